/**
 * The webgpu backend's per-op policy for FusedLinearCrossEntropy: 'kernel' splits the training
 * graph into ORT segments around the node and runs our WGSL FLCE kernel between them (zero-copy);
 * 'ort' runs the portable body in one session. Both match the cpu backend; at vocab 151936 no
 * buffer of [B*T, V] floats is ever created (our allocation log and the device-wide meter).
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import { buildTrainingGraph, trainingSignature } from '../src/autodiff/index.js';
import { ensureFunctions } from '../custom-ops/functions.js';
import { createModel, GraphBuilder, Tensor, type Model } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import type { Batch } from '../src/data/batches.js';
import { CpuTrainer, type TrainerOptions } from '../src/runtime/trainer.js';
import { createNodeWebGpuTrainer, nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { splitStages, type KernelCall } from '../src/runtime/webgpu/stage-split.js';
import { gpuEnv, randn, rng } from './webgpu-helpers.js';

const env = await gpuEnv();

/** ids → Gather(E) → x + tanh(x·W) → FLCE(·, E tied, labels): a tied lm_head like Qwen2's. */
function flceModel(v: number, h: number, chunk: number): Model {
  const r = rng(7);
  const m = createModel({ opset: 20, opsets: { 'ai.ortfuse': 1 } });
  const b = new GraphBuilder(m.graph);
  const ids = b.input('input_ids', DataType.INT64, ['batch', 'seq']);
  const labels = b.input('labels', DataType.INT64, ['batch', 'seq']);
  const emb = b.initializer('model.embed_tokens.weight', Tensor.from(DataType.FLOAT, [v, h], Array.from(randn(r, v * h, 0.1))));
  const w = b.initializer('model.mlp.weight', Tensor.from(DataType.FLOAT, [h, h], Array.from(randn(r, h * h, 0.3))));
  const x = b.op.Gather(emb, ids);
  const hidden = b.op.Reshape(b.op.Add(x, b.op.Tanh(b.op.MatMul(x, w))), b.constant([-1, h], { dtype: DataType.INT64 }));
  const flat = b.op.Reshape(labels, b.constant([-1], { dtype: DataType.INT64 }));
  b.output(b.op.call('FusedLinearCrossEntropy', [hidden, emb, null, flat], { chunk_size: chunk }, { domain: 'ai.ortfuse' })[0], 'loss');
  return m;
}

function training(v: number, h: number, chunk: number, target: 'cpu' | 'webgpu') {
  const m = flceModel(v, h, chunk);
  const values = new Map(m.graph.initializers.map((x) => [x.name, x.initializer!.toArray() as Float32Array]));
  const train = buildTrainingGraph(m, { ops: FUSED_OPS });
  ensureFunctions(train, target);
  return { train, initial: new Map(trainingSignature(train).parameters.map((p) => [p, values.get(p)!])) };
}

function batch(v: number, b: number, t: number, step: number): Batch {
  const r = rng(100 + step);
  const ids = BigInt64Array.from({ length: b * t }, () => BigInt(Math.floor(r() * v)));
  const labels = ids.map((x, i) => (i % 9 === 4 ? -100n : (x * 7n + 3n) % BigInt(v)));
  return { inputIds: ids, labels, batch: b, seq: t };
}

const opts: TrainerOptions = { optimizer: { lr: 1e-2, weightDecay: 0.01, maxGradNorm: 1 }, schedule: { lr: 1e-2, warmupSteps: 1, totalSteps: 10 } };

async function losses(v: number, h: number, chunk: number, b: number, t: number, steps: number, backend: 'cpu' | 'kernel' | 'ort') {
  const p = training(v, h, chunk, backend === 'cpu' ? 'cpu' : 'webgpu');
  const trainer = backend === 'cpu' ? await CpuTrainer.create(p.train, p.initial, opts) : await createNodeWebGpuTrainer(p.train, p.initial, opts, { flce: backend });
  const out: number[] = [];
  try {
    for (let s = 0; s < steps; s++) out.push((await trainer.train(batch(v, b, t, s))).loss);
  } finally {
    await trainer.release();
  }
  return out;
}

describe.skipIf(!env.ctx)('webgpu backend: FusedLinearCrossEntropy as our kernel between ORT segments', () => {
  it('splits the graph: A ends at the kernel inputs, B starts from its gradients; no Loop and no FLCE node left', () => {
    const split = splitStages(training(512, 32, 16, 'webgpu').train, { flce: 'kernel', glue: 'ort' }, FUSED_OPS)!;
    expect(split).toBeDefined();
    expect(split.plan.steps.map((s) => (s.kind === 'ort' ? `ort${s.segment}` : s.call.op))).toEqual(['ort0', 'flce', 'ort1']);
    const [a, b] = split.segments;
    for (const seg of split.segments)
      for (const n of seg.graph.nodes) expect(n.domain === 'ai.ortfuse' || n.opType === 'Loop', n.label).toBe(false);
    const call = (split.plan.steps[1] as { call: KernelCall }).call;
    const [hidden, weight, , labels] = call.inputs;
    expect(a.graph.outputs.map((v) => v.name)).toEqual(expect.arrayContaining([hidden, labels]));
    expect(b.graph.inputs.map((v) => v.name)).toContain(call.outputs[1]);
    // The tied table's gradient is the sum of the embedding's and the kernel's: B adds them.
    expect(b.graph.outputs.map((v) => v.name).sort()).toEqual(['grad.model.embed_tokens.weight', 'grad.model.mlp.weight']);
    expect(split.plan.outputs.sort()).toEqual(['grad.model.embed_tokens.weight', 'grad.model.mlp.weight', 'loss']);
    expect(weight).toBe('model.embed_tokens.weight');
    expect(call.attrs).toMatchObject({ chunkRows: 16, reduction: 'mean' });
  });

  it('the kernel policy matches the cpu backend within 1e-4 for 5 steps', async () => {
    const [cpu, kernel] = [await losses(512, 32, 16, 2, 24, 5, 'cpu'), await losses(512, 32, 16, 2, 24, 5, 'kernel')];
    console.log(`FLCE kernel vs cpu |Δloss|: ${kernel.map((l, i) => Math.abs(l - cpu[i]).toExponential(1)).join(' ')}`);
    for (let i = 0; i < 5; i++) expect(Math.abs(kernel[i] - cpu[i])).toBeLessThan(1e-4);
    expect(kernel[4]).toBeLessThan(kernel[0]);
  });

  it('the ort policy (portable webgpu body in one session) matches the cpu backend within 1e-4', async () => {
    const [cpu, ort] = [await losses(512, 32, 16, 2, 24, 3, 'cpu'), await losses(512, 32, 16, 2, 24, 3, 'ort')];
    for (let i = 0; i < 3; i++) expect(Math.abs(ort[i] - cpu[i])).toBeLessThan(1e-4);
  });

  it('vocab 151936: no [B*T, V] buffer is allocated (ours or ORT’s), and the first loss is ≈ ln V', async () => {
    const [V, H, B, T, chunk] = [151936, 8, 1, 64, 16];
    const { meter } = await nodeOrtWeb();
    const p = training(V, H, chunk, 'webgpu');
    const trainer = await createNodeWebGpuTrainer(p.train, p.initial, opts, { flce: 'kernel' });
    const from = trainer.log.records.length;
    const largestBefore = meter.largest;
    const got: number[] = [];
    try {
      for (let s = 0; s < 1; s++) got.push((await trainer.train(batch(V, B, T, s))).loss);
    } finally {
      await trainer.release();
    }
    const nv = B * T * V * 4;
    const ours = trainer.log.largest(from)!;
    console.log(`vocab ${V}: largest of ours ${ours.label} ${ours.size} B, largest on the device ${meter.largest} B, [N,V] = ${nv} B`);
    expect(ours.label).toBe('flce.logitsChunk');
    expect(ours.size).toBe(chunk * V * 4);
    expect(Math.max(meter.largest, largestBefore)).toBeLessThan(nv);
    // Uniform logits at the start: the loss is about ln V.
    expect(Math.abs(got[0] - Math.log(V))).toBeLessThan(0.05);
  });
});
