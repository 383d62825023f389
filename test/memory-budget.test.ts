/**
 * Memory to a budget (issue 13): the recompute planner (src/autodiff/recompute-plan.ts) leaves the
 * tiny Qwen2's loss and every gradient as the graph without recomputation computes them (cpu
 * backend, onnxruntime-node), at the budgets that make it recompute everything it can (projections
 * included) and about half of that; it refuses a budget it cannot meet before any session exists,
 * naming the smallest one it can (which it then meets); and on the webgpu backend (a stage plan,
 * no clipping) AdamW applied per parameter between segments trains as AdamW after the step does.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import type { Model } from '../src/ir/graph.js';
import { parseSize } from '../src/runtime/memory-budget.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { prepareTraining, trainingGraph } from '../src/runtime/session.js';
import { createNodeWebGpuTrainer } from '../src/runtime/webgpu/ort-web-node.js';
import { parseKernels } from '../src/runtime/webgpu/training-spec.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import { batches, split } from '../src/data/batches.js';
import { DataType } from '../src/onnx/schema.js';
import { gpuEnv, relL2 } from './webgpu-helpers.js';
import { cli } from './cli-helpers.js';
import { cpuStepOutputs } from './cpu-step.js';
import { createTrainer } from '../src/training/index.js';

const [B, T] = [2, 48];

/** The tiny model's training graph: planned to `budget` (cpu memory model), or with no recomputation. */
function graph(budget: number | 'none') {
  const model = buildQwen2(TINY, { seed: 3 });
  const params = new Map<string, Float32Array>();
  for (const v of model.graph.initializers) if (v.initializer!.dtype === DataType.FLOAT) params.set(v.name, v.initializer!.toArray() as Float32Array);
  const g = budget === 'none'
    ? trainingGraph(model, { fuse: true, recompute: false })
    : trainingGraph(model, { fuse: true, memory: { batch: B, seq: T, backend: 'cpu', budget } });
  return { ...g, params };
}

const run = (m: Model, params: Map<string, Float32Array>) => cpuStepOutputs(m, params, B, T);

describe('recompute planner (cpu backend, tiny Qwen2)', () => {
  // The plan that recomputes nothing (a budget above everything) and the one that recomputes all it can.
  const loose = graph(2 ** 50).memory!;
  const minimum = loose.minimumBytes!;

  it('recomputes nothing under a loose budget, everything (projections too) at the smallest one, in between at half-way', () => {
    expect(loose.values).toBe(0);
    const tight = graph(minimum).memory!;
    const half = graph((minimum + loose.predictedBytes) / 2).memory!;
    const dflt = graph('none').memory; // no plan without a memory request
    expect(dflt).toBeUndefined();
    console.log(`tiny ${B}x${T}: activations ${loose.activationBytes} B (nothing recomputed), ${half.activationBytes} B (${half.values} values), ${tight.activationBytes} B (${tight.values} values, ${tight.matmuls} matmul outputs, overhead ${(100 * tight.overhead).toFixed(1)}%)`);
    expect(tight.predictedBytes).toBeLessThanOrEqual(minimum);
    expect(tight.matmuls).toBeGreaterThan(0);
    expect(tight.activationBytes).toBeLessThan(0.7 * loose.activationBytes);
    expect(half.values).toBeGreaterThan(0);
    expect(half.values).toBeLessThan(tight.values);
    expect(half.predictedBytes).toBeLessThanOrEqual((minimum + loose.predictedBytes) / 2);
    expect(half.recomputeFlops).toBeLessThan(tight.recomputeFlops);
  });

  it('the loss and every gradient equal the graph without recomputation (relative L2 < 1e-6)', async () => {
    const ref = graph('none');
    const want = await run(ref.train, ref.params);
    for (const budget of [minimum, (minimum + loose.predictedBytes) / 2]) {
      const g = graph(budget);
      expect(g.train.graph.nodes.some((n) => n.name.endsWith('.recompute'))).toBe(true);
      const got = await run(g.train, g.params);
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      let worst = 0;
      for (const k of Object.keys(want)) {
        const e = relL2(got[k], want[k]);
        worst = Math.max(worst, e);
        expect(e, k).toBeLessThan(1e-6);
      }
      console.log(`budget ${budget} B: loss ${got.loss[0]} vs ${want.loss[0]}, worst relative L2 ${worst.toExponential(2)} over ${Object.keys(want).length} outputs`);
    }
  });

  it('a budget below the smallest is refused before training, naming the smallest (which is met)', async () => {
    const o: TrainOptions = { steps: 1, batch: B, seq: T, lr: 1e-3, seed: 0, fuse: true, memoryBudget: minimum - 2 ** 20 };
    const tok = await getTokenizer('bytes');
    const err = await runTraining(buildQwen2(TINY, { seed: 3 }), mobyDick().slice(0, 20_000), tok, o).catch((e) => e);
    expect(err.code).toBe('resources');
    expect(err.message).toMatch(/^--memory-budget .* does not fit a 2x48 step: predicted peak .* even with every recomputation .*; the smallest budget that can be met is .* \((\d+)MiB\)$/);
    const named = parseSize(/\((\d+MiB)\)$/.exec(err.message)![1])!;
    expect(named).toBeGreaterThanOrEqual(minimum);
    expect(graph(named).memory!.predictedBytes).toBeLessThanOrEqual(named);
    expect(parseSize('12GiB')).toBe(12 * 2 ** 30);
    expect(parseSize('16GB')).toBe(16e9);
    expect(parseSize('12 parsecs')).toBeUndefined();
  });

  it('ortfuse train: --memory-budget too small exits 9 before any step; a fitting one prints the plan in the header', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-budget-'));
    const args = ['train', '--steps', '1', '--batch', '2', '--seq', '32', '--no-progress'];
    const bad = await cli(dir, ...args, '--memory-budget', '1MiB');
    expect(bad.code).toBe(9);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/--memory-budget 1\.0 MiB does not fit a 2x32 step: .* the smallest budget that can be met is .*MiB\)/);
    expect((await cli(dir, ...args, '--memory-budget', '12 parsecs')).stderr).toMatch(/--memory-budget 12 parsecs: expected a size/);
    // The library: createTrainer refuses the same way, and needs the batch shape.
    await expect(createTrainer(buildQwen2(TINY, { seed: 3 }), { batch: 2, seq: 32, memoryBudget: 2 ** 20 })).rejects.toThrow(/does not fit a 2x32 step/);
    await expect(createTrainer(buildQwen2(TINY, { seed: 3 }), { memoryBudget: 2 ** 30 })).rejects.toThrow(/option memoryBudget needs batch and seq/);
    const ok = await cli(dir, ...args, '--memory-budget', '2GiB');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ {2}memory: memory budget 2\.00 GiB \(smallest possible .*\): 0 values recomputed .* predicted peak .* recompute overhead 0\.0% of the step's FLOPs$/m);
  });
});

const env = await gpuEnv();

describe('the webgpu lm_head kernel\'s logits chunk under a budget', () => {
  it('budgeted: the FLCE node carries chunk_size 256 (the calibrated tile); budget-free and on cpu it stays 0 (the kernel\'s 1024-row default)', () => {
    const chunk = (backend: 'cpu' | 'webgpu', budget?: number) => {
      const model = buildQwen2(TINY, { seed: 3 });
      const t = trainingGraph(model, { fuse: true, target: backend, memory: { batch: 2, seq: 32, backend, budget } }).train;
      const nodes = t.graph.nodes.filter((n) => n.opType.startsWith('FusedLinearCrossEntropy'));
      expect(nodes.length).toBeGreaterThan(0);
      return nodes.map((n) => n.attrInt('chunk_size', 0));
    };
    expect(chunk('webgpu', 2 ** 40)).toEqual([256]);
    expect(chunk('webgpu')).toEqual([0]);
    expect(chunk('cpu', 2 ** 40)).toEqual([0]);
  });
});

describe.skipIf(!env.ctx)('webgpu: AdamW per parameter between segments (no clipping)', () => {
  it('trains the tiny Qwen2 as AdamW after the step does (all-ORT policy): losses, norms, parameters', async () => {
    const tok = await getTokenizer('bytes');
    const b = [...Array(3)].map(((it) => () => it.next().value!)(batches(split(tok.encode(mobyDick().slice(0, 50_000)), 32).train, 2, 32, 5)));
    const opts = { optimizer: { lr: 3e-3, maxGradNorm: 0, weightDecay: 0.01 }, schedule: { lr: 3e-3, warmupSteps: 1, totalSteps: 3 } };
    const runs = [];
    for (const policy of ['default', 'none']) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
      const t = await createNodeWebGpuTrainer(p.train, p.initial, opts, parseKernels(policy), { batch: 2, seq: 32 });
      try {
        const steps = [];
        for (const x of b) steps.push(await t.train(x));
        const early = t.runner instanceof StagedSteps ? t.runner.times.gradientsEarly : 0;
        runs.push({ steps, early, state: await t.state({}), params: p.parameters.length });
      } finally {
        await t.release();
      }
    }
    const [staged, single] = runs;
    console.log(`early AdamW: ${staged.early} of ${3 * staged.params} gradients applied between segments; losses ${staged.steps.map((r) => r.loss.toFixed(5))} vs ${single.steps.map((r) => r.loss.toFixed(5))}; norms ${staged.steps.map((r) => r.gradNorm.toFixed(4))} vs ${single.steps.map((r) => r.gradNorm.toFixed(4))}`);
    expect(staged.early).toBeGreaterThan(3 * (staged.params - 2));
    for (const [i, r] of staged.steps.entries()) {
      expect(Math.abs(r.loss - single.steps[i].loss)).toBeLessThan(1e-4);
      expect(Math.abs(r.gradNorm - single.steps[i].gradNorm)).toBeLessThan(1e-3 * single.steps[i].gradNorm);
    }
    for (const [name, s] of single.state.params) expect(relL2(staged.state.params.get(name)!.value, s.value), name).toBeLessThan(1e-4);
  });
});
