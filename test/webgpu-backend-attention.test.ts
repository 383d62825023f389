/**
 * The webgpu backend with each layer's attention fused (`--fuse-attention`, custom-ops/causal-attention)
 * and run on our kernels (`--kernels default,attn`): one causalAttention and one causalAttentionGrad
 * kernel per layer and no Softmax left, one step's loss and gradients equal ORT running the op's
 * bodies, and the tiny Qwen2 trains with the fusion-off losses within fp32 tolerance.
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { batches, split } from '../src/data/batches.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const SHAPE = { batch: 2, seq: 32 };
const L = TINY.num_hidden_layers;
const text = mobyDick().slice(0, 100_000);

describe('stage split of the tiny Qwen2 step with --fuse-attention', () => {
  it('one causalAttention and one causalAttentionGrad kernel per layer by default (attn on); attn=ort leaves them to ORT', () => {
    const g = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseAttention: true, target: 'webgpu' }).train, SHAPE);
    expect(g.graph.nodes.filter((n) => n.opType === 'Softmax')).toEqual([]);
    const ops = (policy: string) => splitStages(g, parseKernels(policy), FUSED_OPS)!.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    const on = ops('default');
    expect([on.filter((k) => k === 'causalAttention').length, on.filter((k) => k === 'causalAttentionGrad').length]).toEqual([L, L]);
    expect(ops('default,attn=ort').filter((k) => k.startsWith('causalAttention'))).toEqual([]);
  });
});

describe.skipIf(!env.ctx)('webgpu backend, CausalAttention on our kernels (dawn.node)', () => {
  it('one step: the loss and every gradient equal ORT running the bodies (relative L2 < 1e-4)', async () => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(text), 32).train, 2, 32, 5).next().value!;
    const got = [];
    for (const kernels of ['flce,attn', 'flce'])
      got.push(await stepGradients(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseAttention: true, target: 'webgpu' }), parseKernels(kernels), SHAPE, b));
    const [k, o] = got;
    const worst = expectSameGradients(k, o);
    console.log(`attention kernels vs bodies: loss ${k.loss} vs ${o.loss}; worst gradient relative L2 ${worst.toExponential(2)} over ${o.grads.size} parameters`);
  });

  it('trains the tiny Qwen2 for 12 steps with attention fused on our kernels, within 1e-4 of the fusion-off losses', async () => {
    const tok = await getTokenizer('bytes');
    const base: TrainOptions = { steps: 12, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2, backend: 'webgpu' };
    let attnOps = 0;
    const on = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, fuseAttention: true, kernels: 'default,attn' }, {
      onStart: ({ prepared }) => void (attnOps = prepared.train.graph.nodes.filter((n) => n.opType === 'CausalAttention').length),
    });
    expect(attnOps).toBe(L);
    const off = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, base);
    const deltas = on.map((r, i) => Math.abs(r.loss - off[i].loss));
    console.log(`fuse-attention (default,attn) vs off |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}; losses ${on[0].loss.toFixed(4)} -> ${on[11].loss.toFixed(4)}`);
    expect(on).toHaveLength(12);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    expect(on[11].loss).toBeLessThan(on[0].loss - 0.5);
    expect(Math.abs(on[11].valLoss! - off[11].valLoss!)).toBeLessThan(1e-4);
  });
});
