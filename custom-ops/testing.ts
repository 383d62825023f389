/**
 * Test support shared by the fused ops' tests (and later by the kernels' tests): seeded data,
 * a one-node model with the op's portable body attached, a run on onnxruntime-node with ORT's graph
 * optimisations disabled, error norms and central finite differences in float64.
 */
import * as ort from 'onnxruntime-node';
import { createModel, GraphBuilder, checkModel, type Model } from '../src/ir/index.js';
import type { Attrs as BuilderAttrs } from '../src/ir/builder.js';
import type { Dim } from '../src/ir/types.js';
import { DataType } from '../src/onnx/schema.js';
import { saveBytes } from '../src/onnx/io.js';
import { ensureFunction } from './functions.js';
import { ORTFUSE_DOMAIN, type BodyOptions, type FusedOp, type Target } from '../src/fused/types.js';
export { rng, randn } from '../src/random.js';
import { rng, randn } from '../src/random.js';

/** max |got − want| / max |want|. */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    num = Number.isNaN(e) ? Infinity : Math.max(num, e);
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

export interface IoDecl {
  name: string;
  elem: number;
  shape: Dim[];
}

/** A model whose graph is one call of `op` (absent optional inputs: null), with its body attached. */
export function fusedModel(op: FusedOp, inputs: (IoDecl | null)[], attrs: BuilderAttrs, target: Target,
  opts: { opset?: number; irVersion?: number; output?: IoDecl; body?: BodyOptions } = {}): Model {
  const m = createModel({ opset: opts.opset ?? 20, irVersion: opts.irVersion });
  const b = new GraphBuilder(m.graph);
  const ins = inputs.map((d) => (d ? b.input(d.name, d.elem, d.shape) : null));
  const [y] = b.op.call(op.schema.name, ins, attrs, { domain: ORTFUSE_DOMAIN });
  const out = opts.output ?? { name: 'y', elem: DataType.FLOAT, shape: [] };
  b.output(y, out.name);
  ensureFunction(m, op, target, opts.body);
  const problems = checkModel(m);
  if (problems.length) throw new Error(problems.map((p) => p.message).join('\n'));
  return m;
}

/** Run `model` on onnxruntime-node's CPU EP with graph optimisations disabled. */
export async function runOrt(model: Model | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const bytes = model instanceof Uint8Array ? model : saveBytes(model);
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

export const f32 = (data: Float32Array, dims: number[]): ort.Tensor => new ort.Tensor('float32', data, dims);
export const i64 = (data: ArrayLike<number>, dims: number[]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(Array.from(data), (v) => BigInt(v)), dims);

/** Central finite difference of scalar `f` with respect to each `x[i]` for i in `indices` (x is restored). */
export function finiteDiff(f: () => number, x: Float64Array, indices: number[], h = 1e-6): number[] {
  return indices.map((i) => {
    const x0 = x[i];
    x[i] = x0 + h;
    const up = f();
    x[i] = x0 - h;
    const down = f();
    x[i] = x0;
    return (up - down) / (2 * h);
  });
}
