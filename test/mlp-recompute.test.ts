/**
 * The fused MLP's two backward forms (custom-ops/swiglu-mlp): SwiGLUMLPKeep + SwiGLUMLPKeepGrad
 * keep gate and up from the forward, SwiGLUMLP + SwiGLUMLPGrad recompute them (two GEMMs per layer).
 * Who chooses (src/runtime/memory-budget.ts mlpInOps, src/autodiff/recompute-plan.ts): by default
 * kept on webgpu at fp32 and recomputed on cpu and under mixed precision; `on` recomputes them,
 * `off` keeps them, and under a budget the planner then keeps them where the budget allows and
 * recomputes them where it needs the bytes. Both forms give the same loss and gradients on the tiny Qwen2: cpu (onnxruntime-node
 * running the bodies) and webgpu (our kernels, and ORT-web running the bodies).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { recomputeInOps } from '../src/autodiff/recompute.js';
import { boundShapes } from '../src/autodiff/memory-plan.js';
import { checkModel } from '../src/ir/index.js';
import { batches, split } from '../src/data/batches.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import type { Model } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import type { MlpRecompute } from '../src/runtime/memory-budget.js';
import { prepareTraining, trainingGraph } from '../src/runtime/session.js';
import { runTraining } from '../src/runtime/train.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { createTrainer } from '../src/training/index.js';
import { relL2 } from './numerics.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';
import { cli } from './cli-helpers.js';
import { cpuStepOutputs } from './cpu-step.js';

const [B, T] = [2, 48];
const L = TINY.num_hidden_layers;
const ROWS = B * T, H = TINY.hidden_size, I = TINY.intermediate_size;
/** Bytes of one layer's kept gate and up: 2 × [B·T, I] fp32. */
const KEPT = 2 * ROWS * I * 4;

/** The tiny model's fused-MLP training graph for `backend`, planned (to `budget` when given). */
function planned(mlpRecompute: MlpRecompute | undefined, backend: 'cpu' | 'webgpu' = 'cpu', budget?: number) {
  return trainingGraph(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, mlpRecompute, target: backend, memory: { batch: B, seq: T, backend, budget } });
}
const count = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op).length;
const forms = (m: Model) => ['SwiGLUMLPKeep', 'SwiGLUMLPKeepGrad', 'SwiGLUMLP', 'SwiGLUMLPGrad'].map((op) => count(m, op));

describe('who chooses the fused MLP form (tiny Qwen2)', () => {
  it('without a budget: kept by default on webgpu at fp32, recomputed on cpu and under mixed precision; on and off force either', () => {
    for (const [backend, choice, kept] of [['webgpu', undefined, true], ['webgpu', 'auto', true], ['cpu', undefined, false], ['cpu', 'auto', false], ['cpu', 'off', true], ['webgpu', 'on', false], ['webgpu', 'off', true], ['cpu', 'on', false]] as const) {
      const p = planned(choice, backend);
      expect(forms(p.train), `${backend} ${choice}`).toEqual(kept ? [L, L, 0, 0] : [0, 0, L, L]);
      expect([p.memory!.inOps, p.memory!.inOpsOf]).toEqual([kept ? 0 : L, L]);
    }
    // Without a memory request (library callers of trainingGraph) the same defaults.
    expect(forms(trainingGraph(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, target: 'webgpu' }).train)).toEqual([L, L, 0, 0]);
    // Mixed precision recomputes by default (its point is the smaller peak), planned or not; off still keeps.
    const mixed = (mlpRecompute?: MlpRecompute, memory?: boolean) => forms(trainingGraph(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, mlpRecompute, target: 'webgpu', precision: 'mixed', ...(memory ? { memory: { batch: B, seq: T, backend: 'webgpu' as const } } : {}) }).train);
    expect([mixed(), mixed(undefined, true), mixed('off'), mixed('off', true)]).toEqual([[0, 0, L, L], [0, 0, L, L], [L, L, 0, 0], [L, L, 0, 0]]);
    expect(forms(trainingGraph(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, target: 'cpu' }).train)).toEqual([0, 0, L, L]);
    expect(forms(trainingGraph(buildQwen2(TINY, { seed: 3 }), { fuse: true, fuseMlp: true, target: 'cpu', recompute: false, mlpRecompute: 'on' }).train)).toEqual([0, 0, L, L]);
  });

  it('the recomputing form adds 4·rows·H·I FLOPs per layer; the kept form predicts the kept bytes more (every layer but the last)', () => {
    for (const backend of ['cpu', 'webgpu'] as const) {
      const on = planned('on', backend).memory!, off = planned('off', backend).memory!;
      expect(on.recomputeFlops - off.recomputeFlops).toBe(L * 4 * ROWS * H * I);
      expect(on.matmuls - off.matmuls).toBe(2 * L);
      // The last layer's backward runs first, at the peak: kept, its g and u are alive there; recomputed,
      // the same bytes are its temporaries (the record's workspace). Every other layer's come off the peak.
      const saved = off.activationBytes - on.activationBytes;
      console.log(`${backend} ${B}x${T}: kept ${off.activationBytes} B, recomputed ${on.activationBytes} B of activations (${saved} = ${(saved / KEPT).toFixed(3)} layers' g and u); predicted ${off.predictedBytes} vs ${on.predictedBytes}`);
      expect(saved).toBe((L - 1) * KEPT);
      expect(off.predictedBytes).toBeGreaterThan(on.predictedBytes + 0.9 * (L - 1) * KEPT);
    }
  });

  it('under a budget with off (and auto on webgpu): kept where the budget allows (a loose one), recomputed where it needs the bytes; auto on cpu recomputes all', () => {
    const loose = planned('off', 'cpu', 2 ** 50).memory!;
    expect([loose.values, loose.inOps, forms(loose.train)]).toEqual([0, 0, [L, L, 0, 0]]);
    const autoMin = planned(undefined, 'cpu', 2 ** 50).memory!;
    expect([autoMin.inOps, forms(autoMin.train)]).toEqual([L, [0, 0, L, L]]);
    // At the smallest budget the planner can meet, it switches layers to the recomputing form.
    const tight = planned('off', 'cpu', loose.minimumBytes!);
    console.log(`tight: ${tight.memory!.inOps} of ${L} fused MLPs recompute, ${tight.memory!.values} values, predicted ${tight.memory!.predictedBytes} <= ${loose.minimumBytes}`);
    expect(tight.memory!.inOps).toBeGreaterThan(0);
    expect(tight.memory!.predictedBytes).toBeLessThanOrEqual(loose.minimumBytes!);
    // Layers switch from the first: the planner's tie order (header of recompute-plan.ts).
    expect(count(tight.train, 'SwiGLUMLPGrad')).toBe(tight.memory!.inOps);
    const firstForward = tight.train.graph.nodes.find((n) => n.opType.startsWith('SwiGLUMLP'))!;
    expect(firstForward.opType).toBe('SwiGLUMLP');
    expect(forms(planned('on', 'cpu', 2 ** 50).train)).toEqual([0, 0, L, L]);
    // auto on webgpu plans as off: kept under a loose budget, switched to recomputing under the tightest.
    const webLoose = planned(undefined, 'webgpu', 2 ** 50).memory!;
    expect([webLoose.inOps, forms(webLoose.train)]).toEqual([0, [L, L, 0, 0]]);
    const webTight = planned(undefined, 'webgpu', planned('off', 'webgpu', 2 ** 50).memory!.minimumBytes!).memory!;
    expect(webTight.inOps).toBeGreaterThan(0);
  });
});

describe('recomputeInOps', () => {
  it('switches each SwiGLUMLPKeepGrad and its forward node, except where something else reads the kept values (here a graph output); the graph stays valid', () => {
    const train = planned('off').train;
    const first = train.graph.nodes.find((n) => n.opType === 'SwiGLUMLPKeepGrad')!;
    train.graph.outputs.push(first.input(5)!);
    const done = recomputeInOps(train.graph, FUSED_OPS);
    expect(done.map((d) => d.node.opType)).toEqual(Array(L - 1).fill('SwiGLUMLPGrad'));
    expect(forms(train)).toEqual([1, 1, L - 1, L - 1]);
    for (const n of train.graph.nodes.filter((x) => x.opType === 'SwiGLUMLPGrad')) expect(n.inputs.length).toBe(5);
    for (const n of train.graph.nodes.filter((x) => x.opType === 'SwiGLUMLP')) expect(n.outputs.length).toBe(1);
    expect(done[0].flops(boundShapes(train.graph, B, T).dims)).toBe(4 * ROWS * H * I);
    expect(checkModel(train).map((p) => p.message)).toEqual([]);
  });
});

const run = (m: Model, params: Map<string, Float32Array>) => cpuStepOutputs(m, params, B, T);

describe('the two forms compute the same step', () => {
  it('cpu (onnxruntime-node, the bodies): the loss and every gradient (relative L2 < 1e-6)', async () => {
    const model = buildQwen2(TINY, { seed: 3 });
    const params = new Map<string, Float32Array>();
    for (const v of model.graph.initializers) if (v.initializer!.dtype === DataType.FLOAT) params.set(v.name, v.initializer!.toArray() as Float32Array);
    const [kept, recomputed] = await Promise.all((['off', 'on'] as const).map(async (choice) => {
      const p = planned(choice);
      return run(p.train, params);
    }));
    expect(Object.keys(kept).sort()).toEqual(Object.keys(recomputed).sort());
    let worst = 0;
    for (const k of Object.keys(kept)) {
      const e = relL2(kept[k], recomputed[k]);
      worst = Math.max(worst, e);
      expect(e, k).toBeLessThan(1e-6);
    }
    console.log(`cpu: loss ${kept.loss[0]} kept vs ${recomputed.loss[0]} recomputed; worst relative L2 ${worst.toExponential(2)} over ${Object.keys(kept).length} outputs`);
  });

  it('runTraining, createTrainer and ortfuse train take the choice (mlpRecompute, --mlp-recompute) and refuse it without the fused MLP or out of its values', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 50_000);
    let seen: number[] = [];
    const base = { steps: 2, batch: 2, seq: 16, lr: 1e-3, seed: 1, fuse: true, fuseMlp: true, warmup: 0 };
    const off = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, mlpRecompute: 'off' }, { onStart: ({ prepared }) => void (seen = forms(prepared.train)) });
    expect(seen).toEqual([L, L, 0, 0]);
    const on = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, base, { onStart: ({ prepared }) => void (seen = forms(prepared.train)) });
    expect(seen).toEqual([0, 0, L, L]);
    for (const [k, r] of off.entries()) expect(Math.abs(r.loss - on[k].loss)).toBeLessThan(1e-5);
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, fuseMlp: false, mlpRecompute: 'on' })).rejects.toThrow(/--mlp-recompute on acts on the fused MLP, which this run does not use \(--fuse-mlp is off by default on cpu\)/);
    await expect(createTrainer(buildQwen2(TINY, { seed: 1 }), { mlpRecompute: 'off' })).rejects.toThrow(/option mlpRecompute 'off' acts on the fused MLP: it needs fuseMlp/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mlp-'));
    const args = ['train', '--steps', '1', '--batch', '2', '--seq', '16', '--no-progress', '--fuse-mlp'];
    const bad = await cli(dir, ...args, '--mlp-recompute', 'sometimes');
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/--mlp-recompute sometimes: expected one of on, off, auto/)]);
    const ok = await cli(dir, ...args, '--mlp-recompute', 'off');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ {2}memory: default recomputation rules: .*; 0 of 2 fused MLPs recompute gate and up\), predicted peak/m);
    await expect(createTrainer(buildQwen2(TINY, { seed: 1 }), { fuseMlp: true, mlpRecompute: 'sometimes' as MlpRecompute })).rejects.toThrow(/option mlpRecompute must be 'on', 'off', 'auto' \(got sometimes\)/);
  });
});

const env = await gpuEnv();

describe('webgpu: the kept form on our kernels', () => {
  it('stage plan: one swigluMlpKeep and one swigluMlpKeepGrad kernel per layer (none of the recomputing ones)', () => {
    const g = webgpuGraph(prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, mlpRecompute: 'off', target: 'webgpu' }).train, { batch: B, seq: T });
    const ops = splitStages(g, parseKernels('default'), FUSED_OPS)!.plan.steps.flatMap((st) => (st.kind === 'kernel' ? [st.call.op] : []));
    const n = (op: string) => ops.filter((k) => k === op).length;
    expect([n('swigluMlpKeep'), n('swigluMlpKeepGrad'), n('swigluMlp'), n('swigluMlpGrad')]).toEqual([L, L, 0, 0]);
  });

  it.skipIf(!env.ctx)('SwiftShader: the loss and every gradient equal between the forms, on our kernels and in ORT (relative L2 < 1e-5)', async () => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(mobyDick().slice(0, 50_000)), 32).train, 2, 32, 5).next().value!;
    for (const kernels of ['flce,mlp', 'none']) {
      const got = [];
      for (const choice of ['off', 'on'] as const) {
        const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, mlpRecompute: choice, target: 'webgpu' });
        expect(forms(p.train)).toEqual(choice === 'off' ? [L, L, 0, 0] : [0, 0, L, L]);
        got.push(await stepGradients(p, parseKernels(kernels), { batch: 2, seq: 32 }, b));
      }
      const worst = expectSameGradients(got[0], got[1], 1e-5);
      console.log(`webgpu ${kernels}: loss kept ${got[0].loss} vs recomputed ${got[1].loss}; worst gradient relative L2 ${worst.toExponential(2)}`);
    }
  });
});
