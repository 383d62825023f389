/**
 * The attention projections as fused Linear ops (`--fuse-linear`, passes/fuse-linear.ts,
 * custom-ops/linear): a training step gives the same loss and gradients as without the fusion —
 * cpu (onnxruntime-node running the bodies; on the builder's tiny Qwen2 and on a default-settings
 * export whose folded val_N weights stay [K, N]: trans_b = 0) and webgpu (our Linear kernels, ORT
 * running the bodies, and the graph without the fusion; a frozen weight's dw skipped).
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { batches, split } from '../src/data/batches.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import type { Model } from '../src/ir/graph.js';
import { loadFile } from '../src/onnx/io.js';
import { prepareTraining, type TrainingGraphOptions } from '../src/runtime/session.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { cpuStepOutputs } from './cpu-step.js';
import { relL2 } from './numerics.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const L = TINY.num_hidden_layers;
const SHAPE = { batch: 2, seq: 32 };
const count = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).length;

/** The step's outputs with and without the Linear fusion agree: loss and every gradient within relative L2 1e-5. */
function expectSameOutputs(on: Record<string, Float32Array>, off: Record<string, Float32Array>): number {
  expect(Object.keys(on).sort()).toEqual(Object.keys(off).sort());
  let worst = 0;
  for (const [name, want] of Object.entries(off)) {
    const e = relL2(on[name], want);
    worst = Math.max(worst, e);
    expect(e, name).toBeLessThan(1e-5);
  }
  return worst;
}

describe('a training step with --fuse-linear equals one without (cpu, the bodies)', () => {
  it('tiny Qwen2 (builder), MLP fused too: 4 Linear and 4 LinearGrad per layer', async () => {
    const prep = (fuseLinear: boolean) => prepareTraining(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, fuseLinear, target: 'cpu' });
    const on = prep(true), off = prep(false);
    expect([count(on.train, 'Linear'), count(on.train, 'LinearGrad'), count(on.train, 'FusedLinearCrossEntropyWithGrad') + count(on.train, 'FusedLinearCrossEntropy')]).toEqual([4 * L, 4 * L, 1]);
    expect(count(off.train, 'Linear')).toBe(0);
    const [a, b] = [await cpuStepOutputs(on.train, on.initial, 2, 24), await cpuStepOutputs(off.train, off.initial, 2, 24)];
    console.log(`tiny cpu --fuse-linear: worst rel L2 ${expectSameOutputs(a, b).toExponential(2)} over ${Object.keys(b).length} outputs`);
  });

  it('a default-settings export stripped of its node records (val_N weights kept [K, N]: trans_b = 0)', async () => {
    const DIR = new URL('../models/fixtures/default/', import.meta.url).pathname;
    const fx = JSON.parse(fs.readFileSync(`${DIR}qwen2-default-tied.json`, 'utf8')) as { config: { num_hidden_layers: number; vocab_size: number } };
    const stripped = () => {
      const m = loadFile(`${DIR}qwen2-default-tied.onnx`);
      for (const n of m.graph.nodes) n.extra.metadata_props = [];
      return m;
    };
    const opts: TrainingGraphOptions = { fuse: true, fuseMlp: true, target: 'cpu' };
    const on = prepareTraining(stripped(), { ...opts, fuseLinear: true }), off = prepareTraining(stripped(), opts);
    const linear = on.train.graph.nodes.filter((n) => n.opType === 'Linear');
    expect(linear.length).toBe(4 * fx.config.num_hidden_layers);
    expect(new Set(linear.map((n) => n.attrInt('trans_b', 1)))).toEqual(new Set([0]));
    const [a, b] = [await cpuStepOutputs(on.train, on.initial, 2, 16, fx.config.vocab_size), await cpuStepOutputs(off.train, off.initial, 2, 16, fx.config.vocab_size)];
    console.log(`default export (trans_b=0) cpu --fuse-linear: worst rel L2 ${expectSameOutputs(a, b).toExponential(2)}`);
  });
});

describe('stage split of the tiny Qwen2 step with --fuse-linear', () => {
  it('one linear and one linearGrad kernel per projection by default; linear=ort leaves them to ORT', () => {
    const g = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear: true, target: 'webgpu' }).train, SHAPE);
    const ops = (policy: string) => splitStages(g, parseKernels(policy), FUSED_OPS)!.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    const kernels = ops('default');
    const n = (op: string) => kernels.filter((k) => k === op).length;
    // The MLP in its kept form: the webgpu default at fp32 (src/runtime/memory-budget.ts mlpInOps).
    expect([n('linear'), n('linearGrad'), n('swigluMlpKeep'), n('flce')]).toEqual([4 * L, 4 * L, L, 1]);
    expect(ops('default,linear=ort').filter((k) => k.startsWith('linear'))).toEqual([]);
    const segments = (fuseLinear: boolean) => splitStages(webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear, target: 'webgpu' }).train, SHAPE), parseKernels('default'), FUSED_OPS)!.segments.length;
    console.log(`tiny step, kernels default: ${segments(true)} ORT segments with --fuse-linear, ${segments(false)} without`);
  });
});

describe.skipIf(!env.ctx)('webgpu backend, Linear on our kernels (dawn.node)', () => {
  it('one step: our kernels, ORT running the bodies, and no fusion give the same loss and gradients (relative L2 < 1e-5); a frozen q_proj gets no gradient', async () => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(mobyDick().slice(0, 100_000)), 32).train, 2, 32, 5).next().value!;
    const prep = (fuseLinear: boolean, freeze?: string[]) => prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear, target: 'webgpu', freeze });
    const kernel = await stepGradients(prep(true), parseKernels('default'), SHAPE, b);
    const body = await stepGradients(prep(true), parseKernels('default,linear=ort'), SHAPE, b);
    const unfused = await stepGradients(prep(false), parseKernels('default'), SHAPE, b);
    const w1 = expectSameGradients(kernel, body, 1e-5), w2 = expectSameGradients(kernel, unfused, 1e-5);
    console.log(`linear kernels vs body: loss ${kernel.loss} vs ${body.loss}, worst rel L2 ${w1.toExponential(2)}; vs unfused ${unfused.loss}, ${w2.toExponential(2)} over ${unfused.grads.size} parameters`);
    const freeze = ['*q_proj.weight'];
    const frozen = await stepGradients(prep(true, freeze), parseKernels('default'), SHAPE, b);
    const frozenRef = await stepGradients(prep(false, freeze), parseKernels('default'), SHAPE, b);
    expect([...frozen.grads.keys()].filter((k) => k.includes('q_proj.weight'))).toEqual([]);
    expect(frozen.grads.size).toBe(unfused.grads.size - L);
    expectSameGradients(frozen, frozenRef, 1e-5);
  });
});
