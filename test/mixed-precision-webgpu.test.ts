/**
 * `--precision mixed` on the webgpu backend (onnxruntime-web on dawn.node; SwiftShader without a
 * GPU: the fused kernels' GEMMs on gemm_f32 with operands rounded to half), on both update paths
 * of WebGpuTrainer.train:
 * - clip path (clipping on: every gradient, then the norm, clip and AdamW): with the scale 2^16 the
 *   run tracks the fp32 run (losses within 1e-3, gradient norms — which would be 2^16 off if the unscaling
 *   were missing — within 1e-2, parameters within 1e-2 relative L2, not equal: the rounding is
 *   there; the exact scaling of every gradient by loss_scale is test/mixed-precision-cpu.test.ts's);
 *   an overflowing scale skips the whole step on the GPU
 *   (AdamW's guard reads the flag the norm kernels raised): parameters and moments unchanged;
 * - early path (clip 0 on a stage plan: each parameter's AdamW as soon as its gradient is final):
 *   tracks fp32 the same way at 2^16; on an overflow, what it guarantees: every parameter whose
 *   gradient is not finite keeps its value and moments (and so does every parameter after it in
 *   the step); parameters finished earlier may have been updated (a partial skip); the step is
 *   reported skipped, the scale halves, AdamW's t does not advance.
 * And a checkpoint resumes at the same scale.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getTokenizer } from '../src/data/tokenizer.js';
import { readCheckpointHeader } from '../src/runtime/checkpoint.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { createTrainer } from '../src/training/trainer.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import type { WebGpuTrainer } from '../src/runtime/webgpu/trainer.js';
import { gpuEnv } from './webgpu-helpers.js';
import { changed, expectCloseState, expectSameState, expectStepsTrack, openTrainer, snapshot, TEXT, tinyModel, trainBatches } from './mixed-helpers.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('precision mixed (webgpu)', () => {
  for (const clip of [1, 0]) {
    const what = clip ? 'clip path' : 'early path (clip 0, stage plan)';
    it(`${what}: with the scale 2^16, 3 steps track the fp32 run (losses, norms, parameters) and differ from it`, async () => {
      const runs = [];
      for (const precision of ['fp32', 'mixed'] as const) {
        const t = await openTrainer({ backend: 'webgpu', precision, clip });
        expect((t as unknown as WebGpuTrainer).runner).toBeInstanceOf(StagedSteps);
        expect(!!(t as unknown as WebGpuTrainer).scaler).toBe(precision === 'mixed');
        const data = await trainBatches();
        const rs = [];
        for (let i = 0; i < 3; i++) rs.push(await t.train(data.next().value!));
        if (!clip) expect(((t as unknown as WebGpuTrainer).runner as StagedSteps).times.gradientsEarly).toBeGreaterThan(0);
        runs.push({ rs, state: await snapshot(t) });
        await t.release();
      }
      const [a, b] = runs;
      expectStepsTrack(a.rs, b.rs, 2 ** 16);
      expectCloseState(a.state, b.state, 1e-2);
    });
  }

  it('clip path: an overflowing scale (2^24: the f16 GEMM operands overflow) skips the whole step on the GPU: parameters and moments unchanged, scale halved; then training goes on', async () => {
    const t = await openTrainer({ backend: 'webgpu', precision: 'mixed', clip: 1, initialLossScale: 2 ** 24, normScale: 16 });
    const data = await trainBatches();
    const before = await snapshot(t);
    const r1 = await t.train(data.next().value!);
    expect(r1).toMatchObject({ step: 1, skipped: true, lossScale: 2 ** 24 });
    expect(Number.isFinite(r1.gradNorm)).toBe(false);
    expect([t.step, t.updates, (t as unknown as WebGpuTrainer).scaler!.scale]).toEqual([1, 0, 2 ** 23]);
    expectSameState(before, await snapshot(t));
    let r = r1;
    const scales = [r1.lossScale];
    while (r.skipped && r.step < 12) scales.push((r = await t.train(data.next().value!)).lossScale);
    expect(r.skipped).toBe(false);
    expect(scales).toEqual(scales.map((_, i) => 2 ** (24 - i)));
    expect(t.updates).toBe(1);
    expect(changed(before, await snapshot(t)).length).toBe(before.size);
    await t.release();
  });

  it('early path: an overflow leaves every parameter with a non-finite gradient (and its moments) as it was; the step is reported skipped; then training goes on', async () => {
    const t = await openTrainer({ backend: 'webgpu', precision: 'mixed', clip: 0, initialLossScale: 2 ** 24, normScale: 16 });
    const data = await trainBatches();
    const before = await snapshot(t);
    const b1 = data.next().value!;
    // Which gradients overflow at 2^24 (unscaled copies: Inf or NaN where the scaled ones overflowed).
    const grads = await t.lossAndGradsOf(b1);
    const overflowed = [...grads].filter(([, g]) => g.some((x) => !Number.isFinite(x))).map(([n]) => n);
    expect(overflowed.length).toBeGreaterThan(0);
    const r1 = await t.train(b1);
    expect(r1).toMatchObject({ step: 1, skipped: true, lossScale: 2 ** 24 });
    expect([t.updates, (t as unknown as WebGpuTrainer).scaler!.scale]).toEqual([0, 2 ** 23]);
    const after = await snapshot(t);
    expectSameState(before, after, overflowed);
    for (const [n, s] of after) if (!s.value.every(Number.isFinite)) expect.fail(`${n} is not finite after the skipped step`);
    const early = changed(before, after);
    console.log(`early path, skipped step 1: ${overflowed.length} of ${before.size} gradients overflowed; ${early.length} parameters kept an update made before the overflow was seen`);
    for (const n of early) expect(overflowed).not.toContain(n);
    let r = r1;
    while (r.skipped && r.step < 12) r = await t.train(data.next().value!);
    expect(r.skipped).toBe(false);
    expect(t.updates).toBe(1);
    await t.release();
  });

  it('graph capture: the loss scale comes from one GPU buffer, so captured segments replay it; losses and norms equal the uncaptured run', async () => {
    const runs = [];
    for (const graphCapture of [false, true]) {
      const t = await createTrainer(tinyModel(), { backend: 'webgpu', lr: 3e-3, steps: 8, warmup: 2, precision: 'mixed', batch: 2, seq: 32, graphCapture });
      const data = await trainBatches();
      const rs = [await t.step(data.next().value!), await t.step(data.next().value!)];
      runs.push(rs.map((r) => [r.loss, r.gradNorm, r.lossScale, r.skipped]));
      await t.dispose();
    }
    expect(runs[1]).toEqual(runs[0]);
  });

  it('a checkpoint resumes at the same scale: steps after it equal the uninterrupted run', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mixed-wgpu-'));
    const tok = await getTokenizer('bytes');
    const o: TrainOptions = { steps: 7, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2, backend: 'webgpu', precision: 'mixed', initialLossScale: 2 ** 19 };
    const full = await runTraining(tinyModel(16), TEXT, tok, o);
    console.log(`checkpoint run: ${full.map((r) => `${Math.log2(r.lossScale!)}${r.skipped ? ' skipped' : ''}`).join(', ')}`);
    expect(full[0].skipped).toBe(true);
    expect(full[full.length - 1].skipped).toBe(false);
    const ckpt = path.join(dir, 'at-2.ckpt');
    await runTraining(tinyModel(16), TEXT, tok, { ...o, stopAfter: 2, checkpoint: ckpt });
    expect(readCheckpointHeader(ckpt).scaler).toEqual({ scale: full[2].lossScale, goodSteps: full.slice(0, 2).filter((r) => !r.skipped).length });
    const rest = await runTraining(tinyModel(16), TEXT, tok, { ...o, resume: ckpt });
    expect(rest.map((r) => [r.step, r.lossScale, r.skipped])).toEqual(full.slice(2).map((r) => [r.step, r.lossScale, r.skipped]));
    rest.forEach((r, i) => expect(Math.abs(r.loss - full[2 + i].loss)).toBeLessThan(1e-6));
  });
});
