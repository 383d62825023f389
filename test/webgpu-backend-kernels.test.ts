/**
 * The webgpu backend's per-op policy with every fused op on our kernels: the training step of the
 * tiny Qwen2 runs as ORT segments with our RMSNorm/SwiGLU/RoPE (forward and backward) and FLCE
 * kernels between them. It trains with the cpu backend's losses, its loss and gradients equal the
 * all-ORT policy's, the stage count stays about 8 per layer, GPU memory does not grow across
 * steps, and a graph that cannot be split fails naming the node.
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { batches, split } from '../src/data/batches.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { splitStages, type KernelOp } from '../src/runtime/webgpu/stage-split.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const base: TrainOptions = { steps: 20, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2 };
const text = mobyDick().slice(0, 100_000);
const ALL = parseKernels('all');

/** ai.ortfuse op type of each kernel kind. */
const OP_TYPE: Record<KernelOp, string> = {
  flce: 'FusedLinearCrossEntropyWithGrad', rmsNorm: 'RMSNorm', rmsNormGrad: 'RMSNormGrad', swiglu: 'SwiGLU',
  swigluGrad: 'SwiGLUGrad', rope: 'RoPE', ropeGrad: 'RoPEGrad',
};

describe('stage split of the tiny Qwen2 step', () => {
  it('every fused node runs as our kernel; about 8 ORT segments per layer; each segment passes the checker', () => {
    const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
    const train = webgpuGraph(p.train, { batch: 2, seq: 32 });
    const s = splitStages(train, ALL, FUSED_OPS)!;
    const kernels = s.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    const byOp = (op: KernelOp) => kernels.filter((k) => k === op).length;
    const inGraph = (t: string) => train.graph.nodes.filter((n) => n.domain === 'ai.ortfuse' && n.opType === t).length;
    const L = TINY.num_hidden_layers;
    console.log(`tiny step, all kernels: ${s.segments.length} ORT segments, ${kernels.length} kernel nodes (${(Object.keys(OP_TYPE) as KernelOp[]).map((k) => `${k} ${byOp(k)}`).join(', ')})`);
    for (const op of Object.keys(OP_TYPE) as KernelOp[]) expect(byOp(op), op).toBe(inGraph(OP_TYPE[op]));
    // The fused ops of the forward (2L + 1 RMSNorm, L SwiGLU, 2L RoPE, 1 FLCE) and their grads.
    expect(byOp('rmsNorm')).toBeGreaterThanOrEqual(2 * L + 1);
    expect(byOp('rope')).toBe(2 * L);
    expect(byOp('rmsNormGrad')).toBe(2 * L + 1);
    expect(byOp('swigluGrad')).toBe(L);
    expect(byOp('ropeGrad')).toBe(2 * L);
    expect(byOp('flce')).toBe(1);
    expect(s.segments.length).toBeLessThanOrEqual(8 * L + 4);
    expect(s.segments.length).toBeGreaterThanOrEqual(6 * L);
    for (const seg of s.segments) for (const n of seg.graph.nodes) expect(n.domain, n.label).not.toBe('ai.ortfuse');
    // FLCE alone: two segments, as before.
    expect(splitStages(train, parseKernels('flce'), FUSED_OPS)!.segments).toHaveLength(2);
    expect(splitStages(train, parseKernels('none'), FUSED_OPS)).toBeUndefined();
  });

  it('a node our kernel cannot run fails naming the node', () => {
    const m = createModel({ opset: 20, opsets: { 'ai.ortfuse': 1 } });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', DataType.FLOAT, [4, 8]);
    const w = b.input('w', DataType.FLOAT, [8]);
    b.output(b.op.call('RMSNorm', [x, w], { epsilon: 1e-6, stash_type: DataType.DOUBLE }, { domain: 'ai.ortfuse', name: 'norm_f64' })[0], 'loss');
    expect(() => splitStages(m, { rmsNorm: 'kernel' }, FUSED_OPS)).toThrow(/node 'norm_f64' \(ai\.ortfuse::RMSNorm\) cannot run as our rmsNorm kernel: stash_type is not FLOAT/);
    expect(splitStages(m, { rmsNorm: 'ort' }, FUSED_OPS)).toBeUndefined();
  });

  it('--kernels: unknown names are usage errors', () => {
    expect(() => parseKernels('flce,layernorm')).toThrow(/--kernels: unknown op 'layernorm'/);
    expect(parseKernels('rmsnorm, rope')).toEqual({ flce: 'ort', rmsNorm: 'kernel', swiglu: 'ort', rope: 'kernel', mlp: 'ort', attn: 'ort', linear: 'ort', glue: 'ort' });
  });
});

describe.skipIf(!env.ctx)('webgpu backend, every fused op on our kernels (dawn.node)', () => {
  it('one step: the loss and every gradient equal the all-ORT policy (relative L2 < 1e-4)', async () => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(text), 32).train, 2, 32, 5).next().value!;
    const got = [];
    for (const policy of [ALL, parseKernels('none')])
      got.push(await stepGradients(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' }), policy, { batch: 2, seq: 32 }, b,
        (t) => expect(t.runner instanceof StagedSteps).toBe(policy === ALL)));
    const [k, o] = got;
    const worst = expectSameGradients(k, o);
    console.log(`kernels vs ort: loss ${k.loss} vs ${o.loss}; worst gradient relative L2 ${worst.toExponential(2)} over ${o.grads.size} parameters`);
  });

  it('trains the tiny Qwen2 for 20 steps with the cpu losses within 1e-4; no GPU memory growth', async () => {
    const tok = await getTokenizer('bytes');
    const { meter } = await nodeOrtWeb();
    const live: number[] = [];
    const gpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'webgpu', kernels: 'all' }, {
      onStep: () => void live.push(meter.live),
    });
    const cpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'cpu' });
    const deltas = gpu.map((r, i) => Math.abs(r.loss - cpu[i].loss));
    console.log(`all kernels vs cpu |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}`);
    console.log(`all kernels ms/step: ${gpu.map((r) => r.ms.toFixed(0)).join(' ')}; live GPU MiB ${(live[4] / 2 ** 20).toFixed(2)} at step 5, ${(live[18] / 2 ** 20).toFixed(2)} at step 19`);
    expect(gpu).toHaveLength(20);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    expect(gpu[19].loss).toBeLessThan(gpu[0].loss - 1.5);
    expect(Math.abs(gpu[19].valLoss! - cpu[19].valLoss!)).toBeLessThan(1e-4);
    expect(live[18]).toBe(live[4]);
  });

  it('runTraining rejects --kernels on the cpu backend', async () => {
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, steps: 1, backend: 'cpu', kernels: 'all' }))
      .rejects.toThrow(/--kernels is an option of --backend webgpu/);
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, steps: 1, backend: 'cpu', graphCapture: true }))
      .rejects.toThrow(/--graph-capture is an option of --backend webgpu/);
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, steps: 1, backend: 'cpu', stepReplay: false }))
      .rejects.toThrow(/--no-step-replay is an option of --backend webgpu/);
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, steps: 1, backend: 'webgpu', graphCapture: true, memoryBudget: 2 ** 30 }))
      .rejects.toThrow(/--graph-capture .* does not combine with --memory-budget/);
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, steps: 1, backend: 'webgpu', graphCapture: true, kernels: 'none' }))
      .rejects.toThrow(/--graph-capture captures the ORT segments between ortfuse's kernels: --kernels none runs none/);
  });
});
