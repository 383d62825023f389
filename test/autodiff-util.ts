/**
 * Gradient checking for the autodiff tests: build a one-op (or small) graph, append its backward
 * pass, run it in onnxruntime-node and compare every gradient element with a central finite
 * difference of the same graph's loss. The loss is Σ y·r with a fixed random r, so every output
 * element matters.
 */
import { expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { FUSED_INFER_RULES, FUSED_OPS } from '../custom-ops/registry.js';
import { addGradients, gradTable } from '../src/autodiff/index.js';
import { createModel, GraphBuilder, type Model, type Value } from '../src/ir/index.js';
import type { Dim } from '../src/ir/types.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
export { rng } from '../src/random.js';
import { rng } from '../src/random.js';

export interface InputSpec {
  name: string;
  dims: number[];
  /** Declared shape (default: `dims`); strings make symbolic dims. */
  decl?: Dim[];
  /** Element type (default DOUBLE). */
  type?: number;
  /** Values (default: uniform in [lo, hi)). */
  data?: number[];
  lo?: number;
  hi?: number;
  /** Differentiate with respect to this input (default: true for float inputs). */
  wrt?: boolean;
}

export interface GradCheckResult {
  /** Per wrt input: max |analytic − numeric| / max(max |numeric|, 1e-12). */
  errors: Record<string, number>;
  /** Per wrt input: max |numeric| (to see that the check is not vacuous). */
  scale: Record<string, number>;
  /** Per wrt input: the analytic gradient. */
  analytic: Record<string, number[]>;
  model: Model;
}

const ORT_TYPE: Record<number, ort.Tensor.Type> = {
  [DataType.DOUBLE]: 'float64', [DataType.FLOAT]: 'float32', [DataType.INT64]: 'int64', [DataType.INT32]: 'int32', [DataType.BOOL]: 'bool',
};

export function makeTensor(type: number, dims: number[], values: number[]): ort.Tensor {
  switch (type) {
    case DataType.DOUBLE: return new ort.Tensor('float64', Float64Array.from(values), dims);
    case DataType.FLOAT: return new ort.Tensor('float32', Float32Array.from(values), dims);
    case DataType.INT64: return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
    case DataType.INT32: return new ort.Tensor('int32', Int32Array.from(values), dims);
    case DataType.BOOL: return new ort.Tensor('bool', Uint8Array.from(values), dims);
    default: throw new Error(`type ${type} not supported (${ORT_TYPE[type]})`);
  }
}

/** Create an ORT session from a model (graph optimisations off). */
export function session(model: Model): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(saveBytes(model), { graphOptimizationLevel: 'disabled' });
}

/**
 * Check the gradients of `build(b, xs)` (which returns the forward output) for every float input.
 * `opset` defaults to 20; `h` is the finite-difference step relative to max(1, |x|).
 */
export async function gradCheck(
  specs: InputSpec[],
  build: (b: GraphBuilder, xs: Value[]) => Value,
  opts: { opset?: number; h?: number; seed?: number; prepare?: (m: Model) => void; inForward?: boolean } = {},
): Promise<GradCheckResult> {
  const rand = rng(opts.seed ?? 7);
  const data = specs.map((s) => s.data ?? Array.from({ length: s.dims.reduce((a, b) => a * b, 1) }, () => (s.lo ?? -1) + ((s.hi ?? 1) - (s.lo ?? -1)) * rand()));
  const model = createModel({ opset: opts.opset ?? 20 });
  const b = new GraphBuilder(model.graph);
  const xs = specs.map((s) => b.input(s.name, s.type ?? DataType.DOUBLE, s.decl ?? s.dims));
  const y = build(b, xs);
  opts.prepare?.(model);
  inferShapes(model, { rules: FUSED_INFER_RULES });
  const yType = y.tensorType?.elemType ?? DataType.DOUBLE;
  const r = b.input('r', yType, undefined);
  const loss = b.op.ReduceSum(b.op.Mul(y, r), { keepdims: 0 });
  b.output(loss, 'loss');
  // Forward once to learn y's shape, for r.
  b.output(y, 'y_out');
  const feeds: Record<string, ort.Tensor> = {};
  specs.forEach((s, k) => (feeds[s.name] = makeTensor(s.type ?? DataType.DOUBLE, s.dims, data[k])));
  const fwd = await session(model);
  const yDims = (await fwd.run({ ...feeds, r: makeTensor(yType, [], [0]) }, [y.name]))[y.name].dims as number[];
  const rVals = Array.from({ length: yDims.reduce((a, c) => a * c, 1) }, () => rand() * 2 - 1);
  feeds.r = makeTensor(yType, yDims, rVals);
  model.graph.outputs = [loss];

  inferShapes(model, { rules: FUSED_INFER_RULES });
  const isFloat = (s: InputSpec) => (s.type ?? DataType.DOUBLE) === DataType.DOUBLE || s.type === DataType.FLOAT;
  const wrt = specs.map((s, k) => ((s.wrt ?? isFloat(s)) ? xs[k] : undefined)).filter((v): v is Value => !!v);
  const lossSession = await session(model);
  const { grads } = addGradients(model.graph, { loss, wrt, rules: gradTable(FUSED_OPS), inForward: opts.inForward });
  opts.prepare?.(model); // again: the backward may call ops the forward did not (in-forward gradients)
  const names: string[] = [];
  for (const v of wrt) {
    const g = grads.get(v);
    if (!g) throw new Error(`no gradient for ${v.name}`);
    const id = b.op.Identity(g);
    b.output(id, `grad_${v.name}`);
    names.push(id.name);
  }
  const full = await session(model);
  const out = await full.run(feeds);
  const errors: Record<string, number> = {};
  const scale: Record<string, number> = {};
  const analyticAll: Record<string, number[]> = {};
  for (const [k, v] of wrt.entries()) {
    const si = specs.findIndex((s) => s.name === v.name);
    const spec = specs[si];
    const analytic = Array.from(out[names[k]].data as Float64Array, Number);
    analyticAll[v.name] = analytic;
    const numeric: number[] = [];
    for (let e = 0; e < data[si].length; e++) {
      const x0 = data[si][e];
      const h = (opts.h ?? 1e-6) * Math.max(1, Math.abs(x0));
      const at = async (x: number) => {
        const d = data[si].slice();
        d[e] = x;
        const f = { ...feeds, [spec.name]: makeTensor(spec.type ?? DataType.DOUBLE, spec.dims, d) };
        return Number((await lossSession.run(f))[loss.name].data[0]);
      };
      numeric.push(((await at(x0 + h)) - (await at(x0 - h))) / (2 * h));
    }
    const m = Math.max(...numeric.map(Math.abs), 1e-12);
    scale[v.name] = m;
    if (analytic.length !== numeric.length) throw new Error(`gradient of ${v.name} has ${analytic.length} elements, expected ${numeric.length}`);
    errors[v.name] = Math.max(...analytic.map((a, i) => Math.abs(a - numeric[i]))) / m;
  }
  return { errors, scale, analytic: analyticAll, model };
}

/** A finite-difference case: name, inputs, graph builder, tolerance (default 1e-6), step h. */
export type GradCase = [name: string, specs: InputSpec[], build: (b: GraphBuilder, xs: Value[]) => Value, tol?: number, h?: number];

/** One test per case: every differentiable input's gradient is non-zero and within tolerance. */
export function runGradCases(cases: GradCase[]): void {
  it.each(cases)('%s', async (_name, specs, build, tol, h) => {
    const r = await gradCheck(specs, build, { h });
    const names = Object.keys(r.errors);
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) {
      expect(r.scale[n], `gradient of ${n} is all zeros: the check would be vacuous`).toBeGreaterThan(1e-12);
      expect(r.errors[n], `relative error of d/d${n}`).toBeLessThan(tol ?? 1e-6);
    }
  });
}
