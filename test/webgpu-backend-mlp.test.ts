/**
 * The webgpu backend with each whole MLP fused (`--fuse-mlp`, custom-ops/swiglu-mlp) and run on our
 * kernel (`--kernels flce,mlp`): the MLP kernel group takes the SwiGLU group's place in the stage
 * plan (no extra ORT segment), one step's loss and gradients equal ORT running the op's body, and
 * the tiny Qwen2 trains with the fusion-off losses within fp32 tolerance.
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
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const SHAPE = { batch: 2, seq: 32 };
const L = TINY.num_hidden_layers;
const text = mobyDick().slice(0, 100_000);

describe('stage split of the tiny Qwen2 step with --fuse-mlp', () => {
  it('one swigluMlp and one swigluMlpGrad kernel per layer (recomputing gate and up: --mlp-recompute on), no SwiGLU left, no more ORT segments than flce,swiglu without it; the default keeps them (swigluMlpKeep, swigluMlpKeepGrad)', () => {
    const mlp = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, mlpRecompute: 'on', target: 'webgpu' }).train, SHAPE);
    const plain = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' }).train, SHAPE);
    const s = splitStages(mlp, parseKernels('flce,mlp'), FUSED_OPS)!;
    const kernels = s.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    const count = (op: string) => kernels.filter((k) => k === op).length;
    expect([count('swigluMlp'), count('swigluMlpGrad'), count('flce'), count('swiglu')]).toEqual([L, L, 1, 0]);
    expect(mlp.graph.nodes.filter((n) => n.opType === 'SwiGLU' || n.opType === 'SwiGLUGrad')).toEqual([]);
    const before = splitStages(plain, parseKernels('flce,swiglu'), FUSED_OPS)!;
    console.log(`tiny step: flce,mlp with --fuse-mlp ${s.segments.length} ORT segments, ${kernels.length} kernel nodes; flce,swiglu without ${before.segments.length}`);
    expect(s.segments.length).toBeLessThanOrEqual(before.segments.length);
    for (const seg of s.segments) expect(seg.graph.nodes.filter((n) => n.opType.startsWith('SwiGLU')).map((n) => n.label)).toEqual([]);
    // The default policy runs the MLP on our kernels; mlp=ort: ORT runs the body and only FLCE is cut out.
    const ops = (policy: string) => splitStages(mlp, parseKernels(policy), FUSED_OPS)!.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    expect(ops('default').filter((k) => k === 'flce' || k.startsWith('swiglu')).sort()).toEqual(kernels.slice().sort());
    expect(ops('default,mlp=ort').filter((k) => k.startsWith('swiglu'))).toEqual([]);
    expect(ops('flce,mlp=ort')).toEqual(['flce']);
    // The webgpu default at fp32 keeps gate and up (src/runtime/memory-budget.ts mlpInOps): the kept form's kernels.
    const kept = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, target: 'webgpu' }).train, SHAPE);
    const keptOps = splitStages(kept, parseKernels('flce,mlp'), FUSED_OPS)!.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    expect(['swigluMlpKeep', 'swigluMlpKeepGrad', 'swigluMlp', 'swigluMlpGrad'].map((op) => keptOps.filter((k) => k === op).length)).toEqual([L, L, 0, 0]);
  });
});

describe.skipIf(!env.ctx)('webgpu backend, SwiGLUMLP on our kernel (dawn.node)', () => {
  it('one step: the loss and every gradient equal ORT running the body (relative L2 < 1e-4)', async () => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(text), 32).train, 2, 32, 5).next().value!;
    const got = [];
    for (const kernels of ['flce,mlp', 'none'])
      got.push(await stepGradients(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, target: 'webgpu' }), parseKernels(kernels), SHAPE, b,
        (t) => expect(t.runner instanceof StagedSteps).toBe(kernels !== 'none')));
    const [k, o] = got;
    const worst = expectSameGradients(k, o);
    console.log(`mlp kernel vs body: loss ${k.loss} vs ${o.loss}; worst gradient relative L2 ${worst.toExponential(2)} over ${o.grads.size} parameters`);
  });

  it('trains the tiny Qwen2 for 12 steps by default with the MLP fused on our kernels, within 1e-4 of the fusion-off losses (flce,swiglu)', async () => {
    const tok = await getTokenizer('bytes');
    const base: TrainOptions = { steps: 12, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2, backend: 'webgpu' };
    let mlpOps = 0;
    // The webgpu defaults: the MLP fused (defaultFuseMlp), gate and up kept at fp32, on our kernels (kernels default = flce,swiglu,mlp).
    const on = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, base, {
      onStart: ({ prepared }) => void (mlpOps = prepared.train.graph.nodes.filter((n) => n.opType === 'SwiGLUMLPKeep').length),
    });
    expect(mlpOps).toBe(L);
    const off = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, fuseMlp: false, kernels: 'flce,swiglu' });
    const deltas = on.map((r, i) => Math.abs(r.loss - off[i].loss));
    console.log(`fuse-mlp (default kernels) vs off (flce,swiglu) |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}; losses ${on[0].loss.toFixed(4)} -> ${on[11].loss.toFixed(4)}`);
    expect(on).toHaveLength(12);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    expect(on[11].loss).toBeLessThan(on[0].loss - 0.5);
    expect(Math.abs(on[11].valLoss! - off[11].valLoss!)).toBeLessThan(1e-4);
  });
});
