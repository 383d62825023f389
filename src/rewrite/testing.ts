/**
 * Test helpers for rewrites: op histograms, seeded random feeds, and running a model in
 * onnxruntime-node with ORT's own graph optimisations disabled (so ORT cannot rewrite for us).
 */
import * as ort from 'onnxruntime-node';
import { DataType } from '../onnx/schema.js';
import { saveBytes } from '../onnx/io.js';
import { checkModel } from '../ir/checker.js';
import type { Model } from '../ir/graph.js';
import { newContext, type Pass } from './pass.js';
export { rng } from '../random.js';
import { rng } from '../random.js';

/** Count of nodes per op type in the main graph (`{ Mul: 3, Sigmoid: 1 }`). */
export function opCounts(model: Model): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of model.graph.nodes) out[n.opType] = (out[n.opType] ?? 0) + 1;
  return out;
}

/**
 * Random feeds for the model's non-initializer inputs. Symbolic dims take their size from `dims`
 * (default 2). Floats are uniform in [-1, 1); integers in [0, intMax).
 */
export function randomFeeds(model: Model, seed = 1, dims: Record<string, number> = {}, intMax = 4): Record<string, ort.Tensor> {
  const r = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of model.graph.inputs) {
    if (v.initializer) continue;
    const t = v.tensorType;
    if (!t?.shape) throw new Error(`input '${v.name}' has no shape`);
    const shape = t.shape.map((d) => (typeof d === 'number' ? d : dims[d ?? ''] ?? 2));
    const n = shape.reduce((a, b) => a * b, 1);
    switch (t.elemType) {
      case DataType.FLOAT: feeds[v.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => r() * 2 - 1), shape); break;
      case DataType.DOUBLE: feeds[v.name] = new ort.Tensor('float64', Float64Array.from({ length: n }, () => r() * 2 - 1), shape); break;
      case DataType.INT64: feeds[v.name] = new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * intMax))), shape); break;
      case DataType.INT32: feeds[v.name] = new ort.Tensor('int32', Int32Array.from({ length: n }, () => Math.floor(r() * intMax)), shape); break;
      case DataType.BOOL: feeds[v.name] = new ort.Tensor('bool', Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)), shape); break;
      default: throw new Error(`randomFeeds: unsupported element type ${t.elemType} of '${v.name}'`);
    }
  }
  return feeds;
}

/** Run the model in onnxruntime-node (CPU EP, graph optimisations disabled); outputs by graph output order. */
export async function runOrt(model: Model, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor[]> {
  const session = await ort.InferenceSession.create(saveBytes(model), { graphOptimizationLevel: 'disabled' });
  try {
    const res = await session.run(feeds);
    return session.outputNames.map((n) => res[n]);
  } finally {
    await session.release();
  }
}

/** Largest absolute difference between two ORT tensors (Infinity if shapes or types differ). */
export function maxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  if (a.type !== b.type || a.dims.join() !== b.dims.join()) return Infinity;
  let m = 0;
  const x = a.data as ArrayLike<number | bigint>;
  const y = b.data as ArrayLike<number | bigint>;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(Number(x[i]) - Number(y[i]));
    if (Number.isNaN(d)) {
      if (!(Number.isNaN(Number(x[i])) && Number.isNaN(Number(y[i])))) return Infinity;
    } else if (d > m) m = d;
  }
  return m;
}

/**
 * Run `pass` on `model` and compare: the checker passes, ORT (optimisations disabled) gives the
 * same outputs on seeded random feeds (same dtypes and shapes; |diff| <= tol), and a second run
 * changes nothing. Returns the first run's result and the op counts before and after.
 */
export async function checkPass(
  model: Model,
  pass: Pass,
  opts: { seed?: number; dims?: Record<string, number>; tol?: number } = {},
) {
  const feeds = randomFeeds(model, opts.seed ?? 1, opts.dims);
  const expected = await runOrt(model, feeds);
  const before = opCounts(model);
  const result = pass.run(model, newContext());
  const problems = checkModel(model);
  const after = opCounts(model);
  const actual = await runOrt(model, feeds);
  const diffs = actual.map((t, i) => maxAbsDiff(t, expected[i]));
  const second = pass.run(model, newContext());
  return { result, before, after, problems, diffs, second, outputs: actual };
}
