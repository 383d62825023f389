/**
 * One training step's outputs (loss and every gradient) on onnxruntime-node, for tests that compare
 * two forms of the same step graph: seeded random token ids (every 13th label ignored) and the
 * given float32 parameters; no CSE, so recomputations stay where the graph put them.
 */
import * as ort from 'onnxruntime-node';
import { TINY } from '../models/config.js';
import { NO_CSE_SESSION_CONFIG } from '../src/autodiff/recompute.js';
import type { Model } from '../src/ir/graph.js';
import { saveBytes } from '../src/onnx/io.js';
import { rng } from '../src/random.js';

export async function cpuStepOutputs(m: Model, params: Map<string, Float32Array>, batch: number, seq: number, vocab = TINY.vocab_size): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(saveBytes(m), { extra: NO_CSE_SESSION_CONFIG, logSeverityLevel: 3 });
  const r = rng(7);
  const ids = BigInt64Array.from({ length: batch * seq }, () => BigInt(Math.floor(r() * vocab)));
  const labels = BigInt64Array.from(ids, (x, i) => (i % 13 === 4 ? -100n : x));
  const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [batch, seq]), labels: new ort.Tensor('int64', labels, [batch, seq]) };
  for (const v of m.graph.inputs) if (params.has(v.name)) feeds[v.name] = new ort.Tensor('float32', params.get(v.name)!, v.tensorType!.shape as number[]);
  const out = await s.run(feeds);
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}
