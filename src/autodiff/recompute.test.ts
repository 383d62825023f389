/**
 * Recomputation in the backward (./recompute.ts): the tiny Qwen2's training graph, fused and
 * unfused, with and without it — the same loss and gradients in onnxruntime-node, a lower static
 * activation peak (./memory-plan.ts), attention probabilities and SwiGLU outputs recomputed, no
 * projection recomputed, and our CSE (run by specialize-shapes) not merging the clones back.
 */
import { FUSED_OPS } from '../../custom-ops/registry.js';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../../custom-ops/functions.js';
import { TINY } from '../../models/config.js';
import { buildQwen2 } from '../../models/qwen2.js';
import { specializeShapes } from '../../passes/specialize-shapes.js';
import type { Model, Node, Value } from '../ir/graph.js';
import { saveBytes } from '../onnx/io.js';
import { DataType } from '../onnx/schema.js';
import { defaultPipeline, runPipeline } from '../pipeline.js';
import { rng } from '../random.js';
import { newContext } from '../rewrite/pass.js';
import { cloneModel } from './clone.js';
import { memoryPlan } from './memory-plan.js';
import { isRecomputeNode, NO_CSE_SESSION_CONFIG } from './recompute.js';
import { buildTrainingGraph } from './training.js';

const [B, T] = [4, 64];

function graphs(fused: boolean): { on: Model; off: Model; params: Map<string, Float32Array> } {
  const model = buildQwen2(TINY, { seed: 3 });
  if (fused) runPipeline(model, defaultPipeline(), { options: { training: true } });
  const params = new Map<string, Float32Array>();
  for (const v of model.graph.initializers) if (v.initializer!.dtype === DataType.FLOAT) params.set(v.name, v.initializer!.toArray() as Float32Array);
  const [on, off] = [buildTrainingGraph(model, { ops: FUSED_OPS }), buildTrainingGraph(model, { ops: FUSED_OPS, recompute: false })];
  for (const m of [on, off]) ensureFunctions(m, 'cpu');
  return { on, off, params };
}

function specialized(m: Model): Model {
  m = cloneModel(m);
  specializeShapes({ input_ids: [B, T], labels: [B, T] }).run(m, newContext());
  return m;
}

async function run(m: Model, params: Map<string, Float32Array>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(saveBytes(m), { extra: NO_CSE_SESSION_CONFIG, logSeverityLevel: 3 });
  const r = rng(11);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(Math.floor(r() * TINY.vocab_size)));
  const labels = BigInt64Array.from(ids, (x, i) => (i % 17 === 5 ? -100n : x));
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [B, T]),
    labels: new ort.Tensor('int64', labels, [B, T]),
  };
  for (const v of m.graph.inputs) if (params.has(v.name)) feeds[v.name] = new ort.Tensor('float32', params.get(v.name)!, v.tensorType!.shape as number[]);
  const out = await s.run(feeds);
  await s.release();
  return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.data as Float32Array]));
}

const clones = (m: Model) => m.graph.nodes.filter(isRecomputeNode);
const fromWeight = (v: Value | null): boolean =>
  !!v && (v.isGraphInput() && v.name !== 'input_ids' && v.name !== 'labels' || !!v.initializer || (!!v.producer && ['Transpose', 'Reshape', 'Cast'].includes(v.producer.opType) && fromWeight(v.producer.input(0))));

describe.each([true, false])('recompute in the backward (fused: %s)', (fused) => {
  const { on, off, params } = graphs(fused);

  it('recomputes attention probabilities, reshapes and (fused) SwiGLU; never a projection', () => {
    const ops = (n: Node[]) => n.reduce<Record<string, number>>((a, x) => ({ ...a, [x.opType]: (a[x.opType] ?? 0) + 1 }), {});
    const c = ops(clones(on));
    expect(clones(off)).toHaveLength(0);
    expect(c.Softmax).toBe(TINY.num_hidden_layers);
    if (fused) expect(c.SwiGLU).toBe(TINY.num_hidden_layers);
    for (const n of clones(on)) if (n.opType === 'MatMul' || n.opType === 'Gemm') for (const v of n.inputs) expect(fromWeight(v), `${n.label} reads a weight`).toBe(false);
    // Every clone is read by the backward only, after the forward has finished with the original.
    for (const n of clones(on)) for (const o of n.outputs) for (const u of o.uses()) expect(u.node.extra.metadata_props?.[0]?.value).toMatch(/autodiff|recompute/);
  });

  it('lowers the static activation peak; our CSE keeps the clones', () => {
    const a = specialized(on), b = specialized(off);
    expect(clones(a).length).toBeGreaterThan(0);
    const [pa, pb] = [memoryPlan(a.graph), memoryPlan(b.graph)];
    expect(pa.unknown).toBe(0);
    console.log(`tiny ${fused ? 'fused' : 'unfused'} ${B}x${T}: activation peak ${(pb.peakBytes / 2 ** 20).toFixed(2)} -> ${(pa.peakBytes / 2 ** 20).toFixed(2)} MiB with recomputation (${clones(a).length} clones)`);
    expect(pa.peakBytes).toBeLessThan(0.75 * pb.peakBytes);
  });

  it('gives the same loss and gradients in onnxruntime-node', async () => {
    const [a, b] = [await run(on, params), await run(off, params)];
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) {
      let worst = 0;
      for (let i = 0; i < b[k].length; i++) worst = Math.max(worst, Math.abs(a[k][i] - b[k][i]) / (Math.abs(b[k][i]) + 1e-6));
      expect(worst, k).toBeLessThan(1e-5);
    }
  });
});
