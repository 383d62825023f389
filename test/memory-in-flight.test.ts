/**
 * Issue 13 leftovers, on the tiny Qwen2 (real onnxruntime-web on Dawn / SwiftShader, real
 * onnxruntime-node):
 * - webgpu stage plan: the bounded in-flight window (StagedSteps.ahead.inFlight) keeps at most K
 *   submissions unfinished when the host records the next one, and the losses do not change with K
 *   (0 = no bound, the default without a budget; 1; the budget's), with AdamW applied between
 *   segments (clip 0).
 * - cpu: gradients written into pre-allocated outputs (preallocateGradients) train exactly as the
 *   gradients ORT allocates.
 */
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { batches, split, type Batch } from '../src/data/batches.js';
import { prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer, type TrainerOptions } from '../src/runtime/trainer.js';
import { createNodeWebGpuTrainer } from '../src/runtime/webgpu/ort-web-node.js';
import { parseKernels } from '../src/runtime/webgpu/training-spec.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import { BUDGET_IN_FLIGHT } from '../src/runtime/memory-budget.js';
import { gpuEnv } from './webgpu-helpers.js';
import { memoryMeter } from '../src/runtime/webgpu/memory.js';

await gpuEnv();
const STEPS = 3;
const opts: TrainerOptions = { optimizer: { lr: 3e-3, maxGradNorm: 0 }, schedule: { lr: 3e-3, warmupSteps: 0, totalSteps: STEPS } };

async function data(): Promise<Batch[]> {
  const tok = await getTokenizer('bytes');
  const it = batches(split(tok.encode(mobyDick().slice(0, 50_000)), 32).train, 2, 32, 3);
  return Array.from({ length: STEPS }, () => it.next().value!);
}

describe('bounded in-flight window of the webgpu stage plan', () => {
  it('never more than K submissions unfinished; the same losses for K = 0 (default), 1 and the budget window', async () => {
    const bs = await data();
    const runs: { k: number; losses: number[]; waits: number; worst: number; submissions: number }[] = [];
    for (const k of [0, 1, BUDGET_IN_FLIGHT]) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
      const t = await createNodeWebGpuTrainer(p.train, p.initial, { ...opts, ...(k ? { inFlight: k } : {}) }, parseKernels('default'), { batch: 2, seq: 32 });
      const runner = t.runner as StagedSteps;
      expect(runner).toBeInstanceOf(StagedSteps);
      expect(runner.ahead.inFlight).toBe(k);
      // Count the unfinished submissions each time one is noted (the runner's, and the trainer's syncs).
      const queue = t.ctx.device.queue;
      const done = queue.onSubmittedWorkDone.bind(queue);
      let unfinished = 0;
      let worst = 0;
      let waits = 0;
      queue.onSubmittedWorkDone = () => {
        waits++;
        worst = Math.max(worst, unfinished);
        unfinished++;
        return done().finally(() => void unfinished--);
      };
      try {
        const losses = [];
        for (const b of bs) losses.push((await t.train(b)).loss);
        const s = runner.times;
        runs.push({ k, losses, waits, worst, submissions: s.ortRuns + s.kernelGroups });
        expect(s.gradientsEarly).toBeGreaterThan(0);
      } finally {
        await t.release();
      }
    }
    console.log(runs.map((r) => `K=${r.k}: ${r.waits} waits for ${r.submissions} submissions, at most ${r.worst} unfinished; losses ${r.losses.map((l) => l.toFixed(6)).join(' ')}`).join('\n'));
    const [free, one, budget] = runs;
    // Unbounded: only the trainer's syncs (one per step, after the step); bounded: one per submission.
    expect(free.waits).toBe(STEPS);
    expect(one.waits).toBe(one.submissions + STEPS);
    expect(budget.waits).toBe(budget.submissions + STEPS);
    expect(one.worst).toBeLessThanOrEqual(1);
    expect(budget.worst).toBeLessThanOrEqual(BUDGET_IN_FLIGHT);
    for (const r of [one, budget]) for (let i = 0; i < STEPS; i++) expect(Math.abs(r.losses[i] - free.losses[i])).toBeLessThan(1e-6);
    expect(free.losses[STEPS - 1]).toBeLessThan(free.losses[0]);
  });
});

describe('bound on released bytes not yet freed (unfreedBytes)', () => {
  it('waits only when the released bytes since the last finished submission pass the bound; the same losses', async () => {
    const bs = await data();
    const runs: { bound: number; losses: number[]; waits: number; peak: number; released: number; fences: number }[] = [];
    for (const bound of [0, 64 * 1024]) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
      // bufferPool 0: our kernels' buffers destroyed when released, so the step releases enough for the bound to act.
      const t = await createNodeWebGpuTrainer(p.train, p.initial, { ...opts, bufferPool: 0, ...(bound ? { unfreedBytes: bound } : {}) }, parseKernels('default'), { batch: 2, seq: 32 });
      const runner = t.runner as StagedSteps;
      const queue = t.ctx.device.queue;
      const done = queue.onSubmittedWorkDone.bind(queue);
      let fences = 0;
      queue.onSubmittedWorkDone = () => (fences++, done());
      const meter = memoryMeter();
      const released0 = meter.released;
      try {
        const losses = [];
        for (const b of bs) losses.push((await t.train(b)).loss);
        runs.push({ bound, losses, waits: runner.ahead.unfreedWaits, peak: runner.ahead.unfreedPeak, released: meter.released - released0, fences: fences - STEPS });
      } finally {
        await t.release();
      }
    }
    console.log(runs.map((r) => `bound ${r.bound} B: ${r.fences} fences, ${r.waits} waits, at most ${r.peak} B released and not known freed; ${r.released} B released in ${STEPS} steps; losses ${r.losses.map((l) => l.toFixed(6)).join(' ')}`).join('\n'));
    const [free, bounded] = runs;
    expect(free.fences).toBe(0);
    expect(free.waits).toBe(0);
    // The steps release many times the bound, so the bound has to act, with fewer fences than submissions.
    expect(bounded.released).toBeGreaterThan(8 * bounded.bound);
    expect(bounded.waits).toBeGreaterThan(0);
    expect(bounded.peak).toBeLessThanOrEqual(bounded.bound);
    expect(bounded.peak).toBeGreaterThan(0);
    for (let i = 0; i < STEPS; i++) expect(Math.abs(bounded.losses[i] - free.losses[i])).toBeLessThan(1e-6);
  });
});

describe('webgpu: our kernels\' buffers reused across steps (bufferPool)', () => {
  it('the same losses with and without the pool; the pool serves buffers from step 2 on', async () => {
    const bs = await data();
    const runs: { pool: number | undefined; losses: number[]; reused: number }[] = [];
    for (const pool of [0, undefined]) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, target: 'webgpu' });
      const t = await createNodeWebGpuTrainer(p.train, p.initial, { ...opts, bufferPool: pool }, parseKernels('default'), { batch: 2, seq: 32 });
      try {
        const losses = [];
        for (const b of bs) losses.push((await t.train(b)).loss);
        runs.push({ pool, losses, reused: t.ctx.reused });
      } finally {
        await t.release();
      }
    }
    console.log(runs.map((r) => `bufferPool ${r.pool ?? 'default'}: ${r.reused} buffers reused; losses ${r.losses.join(' ')}`).join('\n'));
    expect(runs[0].reused).toBe(0);
    expect(runs[1].reused).toBeGreaterThan(10);
    expect(runs[1].losses).toEqual(runs[0].losses);
  });
});

describe('cpu: gradients written into pre-allocated outputs', () => {
  it('trains exactly as ORT-allocated gradients (losses, norms, parameters)', async () => {
    const bs = await data();
    const got = [];
    for (const preallocateGradients of [false, true]) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'cpu' });
      const t = await CpuTrainer.create(p.train, p.initial, { ...opts, threads: 1, preallocateGradients });
      try {
        const steps = [];
        for (const b of bs) steps.push(await t.train(b));
        got.push({ steps, params: t.params });
      } finally {
        await t.release();
      }
    }
    const [ort, mine] = got;
    for (let i = 0; i < STEPS; i++) {
      expect(mine.steps[i].loss).toBe(ort.steps[i].loss);
      expect(mine.steps[i].gradNorm).toBe(ort.steps[i].gradNorm);
    }
    for (const [name, p] of ort.params) expect(mine.params.get(name)!.value, name).toEqual(p.value);
    expect(mine.steps[STEPS - 1].loss).toBeLessThan(mine.steps[0].loss);
  });
});
