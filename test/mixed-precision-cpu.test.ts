/**
 * `--precision mixed` on the cpu backend (onnxruntime-node; the fused ops' bodies round their GEMM
 * operands to half): the step graph's `loss_scale` input scales every gradient and not the loss;
 * with the scale 2^16 the unscaled run tracks the fp32 run (losses within 1e-3, gradient norms within 1e-2 —
 * a missing unscale would put the norm 2^16 off — parameters within 1e-2 relative L2, and not
 * equal: the rounding is there); a scale that overflows float32 skips the step (parameters
 * and moments unchanged, the scale halved, AdamW's t not advanced) until training goes on; the
 * scaler's state survives a checkpoint; bad options fail before any work, in the library, the
 * runtime and the CLI.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { LOSS_SCALE } from '../src/autodiff/names.js';
import { buildTrainingGraph } from '../src/autodiff/training.js';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { NO_CSE_SESSION_CONFIG } from '../src/autodiff/recompute.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { loadCheckpoint, readCheckpointHeader } from '../src/runtime/checkpoint.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { createTrainer } from '../src/training/trainer.js';
import { EXIT_CODES } from '../src/errors.js';
import { cli } from './cli-helpers.js';
import { changed, expectCloseState, expectSameState, expectStepsTrack, openTrainer, snapshot, TEXT, tinyModel, trainBatches } from './mixed-helpers.js';

describe('precision mixed (cpu)', () => {
  it('the step graph takes loss_scale (float32 []): every gradient output is scaled by it, the loss is not; fp32 graphs have no such input', async () => {
    const fp32 = prepareTraining(tinyModel(), { fuse: true, target: 'cpu' });
    expect(fp32.train.graph.inputs.some((v) => v.name === LOSS_SCALE)).toBe(false);
    expect(fp32.mixed).toBeUndefined();
    const p = prepareTraining(tinyModel(), { fuse: true, target: 'cpu', precision: 'mixed' });
    const input = p.train.graph.inputs.find((v) => v.name === LOSS_SCALE)!;
    expect(input.tensorType).toMatchObject({ elemType: DataType.FLOAT, shape: [] });
    expect(p.parameters).not.toContain(LOSS_SCALE);
    expect(p.mixed).toBeDefined();
    const s = await ort.InferenceSession.create(saveBytes(p.train), { extra: NO_CSE_SESSION_CONFIG, logSeverityLevel: 3 });
    const b = (await trainBatches()).next().value!;
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', b.inputIds, [2, 32]), labels: new ort.Tensor('int64', b.labels, [2, 32]) };
    for (const v of p.train.graph.inputs) if (p.initial.has(v.name)) feeds[v.name] = new ort.Tensor('float32', p.initial.get(v.name)!, v.tensorType!.shape as number[]);
    const at = async (scale: number) => s.run({ ...feeds, [LOSS_SCALE]: new ort.Tensor('float32', Float32Array.of(scale), []) });
    const [one, big] = [await at(1), await at(1024)];
    await s.release();
    expect((big.loss.data as Float32Array)[0]).toBe((one.loss.data as Float32Array)[0]);
    const grads = Object.keys(one).filter((k) => k.startsWith('grad.'));
    expect(grads.length).toBe(p.parameters.length);
    for (const k of grads) {
      const [x, y] = [one[k].data as Float32Array, big[k].data as Float32Array];
      expect(x.some((v) => v !== 0)).toBe(true);
      for (let i = 0; i < x.length; i++) if (y[i] !== x[i] * 1024) expect.fail(`${k}[${i}]: ${y[i]} is not 1024 × ${x[i]}`);
    }
  });

  it('autodiff refuses a loss-scale input for a loss that is not a float32 scalar, naming it', () => {
    expect(() => buildTrainingGraph(tinyModel(), { ops: FUSED_OPS, loss: 'logits', lossScaleInput: true })).toThrow(/^training graph: a loss-scale input needs a float32 scalar loss, not 'logits' \(FLOAT\[batch,seq,512\]\)$/);
    const ok = buildTrainingGraph(tinyModel(), { ops: FUSED_OPS, lossScaleInput: true });
    expect(ok.graph.inputs[ok.graph.inputs.length - 1].name).toBe(LOSS_SCALE);
  });

  it('with the scale 2^16, 3 steps (one of 2 micro-batches) track the fp32 run: losses, norms and parameters close, not equal', async () => {
    const runs = [];
    for (const precision of ['fp32', 'mixed'] as const) {
      const t = await openTrainer({ backend: 'cpu', precision });
      const data = await trainBatches();
      const rs = [await t.train(data.next().value!), await t.train(data.next().value!), await (t as unknown as { train(b: unknown[]): ReturnType<typeof t.train> }).train([data.next().value!, data.next().value!])];
      runs.push({ rs, state: await snapshot(t), updates: t.updates });
      await t.release();
    }
    const [a, b] = runs;
    expectStepsTrack(a.rs, b.rs, 2 ** 16);
    expect(a.rs.map((r) => [r.lossScale, r.skipped])).toEqual([[undefined, false], [undefined, false], [undefined, false]]);
    expect([a.updates, b.updates]).toEqual([3, 3]);
    expectCloseState(a.state, b.state, 1e-2);
  });

  it('a scale that overflows float32 (2^127) skips the step: parameters and moments unchanged, scale halved, t kept; then training goes on', async () => {
    const t = await openTrainer({ backend: 'cpu', precision: 'mixed', initialLossScale: 2 ** 127, normScale: 16 });
    const data = await trainBatches();
    const before = await snapshot(t);
    const b1 = data.next().value!;
    // The unscaled gradients of the first batch: some overflowed (Inf or NaN).
    const grads = await t.lossAndGradsOf(b1);
    expect([...grads.values()].some((g) => g.some((x) => !Number.isFinite(x)))).toBe(true);
    const r1 = await t.train(b1);
    expect(r1).toMatchObject({ step: 1, skipped: true, lossScale: 2 ** 127 });
    expect(Number.isFinite(r1.loss)).toBe(true);
    expect(Number.isFinite(r1.gradNorm)).toBe(false);
    expect([t.step, t.updates]).toEqual([1, 0]);
    expectSameState(before, await snapshot(t));
    // Halving until the gradients fit, then updates.
    const scales = [r1.lossScale];
    let r = r1;
    while (r.skipped && r.step < 12) scales.push((r = await t.train(data.next().value!)).lossScale);
    expect(r.skipped).toBe(false);
    expect(scales).toEqual(scales.map((_, i) => 2 ** (127 - i)));
    expect(t.updates).toBe(1);
    const after = await snapshot(t);
    expect(changed(before, after).length).toBe(before.size);
    const next = await t.train(data.next().value!);
    expect(next).toMatchObject({ skipped: false, lossScale: r.lossScale });
    expect(t.updates).toBe(2);
    await t.release();
  });

  it('a checkpoint keeps the scaler (scale, good steps) and AdamW t: a resumed run continues with the same scale, equal to the uninterrupted run', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mixed-'));
    const tok = await getTokenizer('bytes');
    const o: TrainOptions = { steps: 7, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2, precision: 'mixed', initialLossScale: 2 ** 127 };
    const full = await runTraining(tinyModel(16), TEXT, tok, o);
    const skippedSteps = full.filter((r) => r.skipped).map((r) => r.step);
    expect(skippedSteps[0]).toBe(1);
    expect(skippedSteps.length).toBeLessThan(6);
    for (const stop of [2, skippedSteps.length + 1]) {
      const ckpt = path.join(dir, `at-${stop}.ckpt`);
      await runTraining(tinyModel(16), TEXT, tok, { ...o, stopAfter: stop, checkpoint: ckpt });
      const h = readCheckpointHeader(ckpt);
      const st = loadCheckpoint(ckpt);
      expect(h.scaler).toEqual({ scale: full[stop].lossScale, goodSteps: full.slice(0, stop).filter((r) => !r.skipped).length });
      expect(st.updates ?? st.step).toBe(stop - full.slice(0, stop).filter((r) => r.skipped).length);
      const rest = await runTraining(tinyModel(16), TEXT, tok, { ...o, resume: ckpt });
      expect(rest.map((r) => [r.step, r.loss, r.gradNorm, r.lossScale, r.skipped])).toEqual(full.slice(stop).map((r) => [r.step, r.loss, r.gradNorm, r.lossScale, r.skipped]));
    }
    // The checkpoint of a mixed run does not resume as fp32 (nor the reverse): the setting is named.
    await expect(runTraining(tinyModel(16), TEXT, tok, { ...o, precision: 'fp32', initialLossScale: undefined, resume: path.join(dir, 'at-2.ckpt') })).rejects.toThrow(/--precision mixed.*--precision fp32/);
  });

  it('the training API: StepInfo carries lossScale and skipped; save/load keeps the scale; an fp32 trainer refuses a mixed checkpoint', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mixed-api-'));
    const config = { lr: 3e-3, steps: 8, warmup: 2, precision: 'mixed' as const, initialLossScale: 2 ** 127 };
    const a = await createTrainer(tinyModel(16), config);
    const data = await trainBatches();
    const first = [await a.step(data.next().value!), await a.step(data.next().value!)];
    expect(first.map((r) => [r.step, r.lossScale, r.skipped])).toEqual([[1, 2 ** 127, true], [2, 2 ** 126, true]]);
    const file = path.join(dir, 'api.ckpt');
    await a.save(file);
    const rest = [];
    for (let i = 0; i < 4; i++) rest.push(await a.step(data.next().value!));
    await a.dispose();
    const b = await createTrainer(tinyModel(16), config);
    await b.load(file);
    const again = await trainBatches();
    again.next(), again.next();
    const resumed = [];
    for (let i = 0; i < 4; i++) resumed.push(await b.step(again.next().value!));
    await b.dispose();
    expect(resumed.map((r) => [r.step, r.loss, r.lossScale, r.skipped])).toEqual(rest.map((r) => [r.step, r.loss, r.lossScale, r.skipped]));
    expect(rest.some((r) => !r.skipped)).toBe(true);
    const fp32 = await createTrainer(tinyModel(16), { lr: 3e-3, steps: 8, warmup: 2 });
    await expect(fp32.load(file)).rejects.toThrow(/written with precision mixed; this trainer has precision fp32/);
    expect((await fp32.step((await trainBatches()).next().value!)).skipped).toBe(false);
    await fp32.dispose();
  });

  it('bad options fail before any work: library, runtime, CLI', async () => {
    const usage = (f: () => Promise<unknown>, re: RegExp) => expect(f()).rejects.toMatchObject({ code: 'usage', message: expect.stringMatching(re) });
    await usage(() => createTrainer(tinyModel(), { precision: 'bf16' as never }), /^option precision must be 'fp32' or 'mixed' \(got bf16\)$/);
    await usage(() => createTrainer(tinyModel(), { precision: 'mixed', fuse: false }), /mixed precision rounds the fused ops' GEMM operands; it needs fuse/);
    await usage(() => createTrainer(tinyModel(), { initialLossScale: 1024 }), /option initialLossScale is an option of precision 'mixed'/);
    await usage(() => createTrainer(tinyModel(), { precision: 'mixed', initialLossScale: -2 }), /option initialLossScale must be a number between 2\^-14 and 2\^127/);
    const tok = await getTokenizer('bytes');
    const o: TrainOptions = { steps: 3, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true };
    await usage(() => runTraining(tinyModel(), TEXT, tok, { ...o, precision: 'half' as never }), /^--precision half: expected one of fp32, mixed$/);
    await usage(() => runTraining(tinyModel(), TEXT, tok, { ...o, precision: 'mixed', fuse: false }), /--precision mixed rounds the fused ops' GEMM operands; it needs fuse/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mixed-cli-'));
    const small = ['--steps', '3', '--batch', '2', '--seq', '32', '--no-progress'];
    for (const [argv, re] of [
      [['--precision', 'bf16'], /^ortfuse: error: --precision bf16: expected one of fp32, mixed\n$/],
      [['--precision', 'mixed', '--no-fuse'], /^ortfuse: error: --precision mixed rounds the fused ops' GEMM operands; it needs fuse \(drop --no-fuse\)\n$/],
      [['--initial-loss-scale', '1024'], /^ortfuse: error: --initial-loss-scale is an option of --precision mixed\n$/],
      [['--precision', 'mixed', '--initial-loss-scale', 'x'], /^ortfuse: error: --initial-loss-scale must be a number \(got 'x'\)\n$/],
    ] as const) {
      const r = await cli(dir, 'train', ...small, ...argv);
      expect(r.stderr).toMatch(re);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(EXIT_CODES.usage);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('`ortfuse train --precision mixed` says so in its header, logs the loss scale per step and counts skipped steps in the summary and JSON', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-mixed-cli-'));
    const r = await cli(dir, 'train', '--steps', '3', '--batch', '2', '--seq', '32', '--no-progress', '--precision', 'mixed', '--json', 'run.jsonl');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/backend cpu \(onnxruntime-node CPU EP\), mixed, step memory/);
    expect(r.stdout).toMatch(/\n {2}mixed precision: f16 GEMM operands in \d+ fused ops?.*dynamic loss scale from 65536\n/);
    expect(r.stdout).toMatch(/\nstep 1 loss [\d.]+ .* loss scale 65536\n/);
    expect(r.stdout).toMatch(/\ndone: loss [\d.]+ → [\d.]+, validation [\d.]+; 0 steps skipped on overflow, last loss scale 65536\n/);
    const recs = fs.readFileSync(path.join(dir, 'run.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(recs.map((x) => [x.step, x.lossScale, x.skipped])).toEqual([[1, 65536, false], [2, 65536, false], [3, 65536, false]]);
    const fp32 = await cli(dir, 'train', '--steps', '1', '--batch', '2', '--seq', '32', '--no-progress');
    expect(fp32.stdout).toMatch(/, fp32, step memory/);
    expect(fp32.stdout).not.toMatch(/loss scale/);
  });
});

describe('projections and attention as fused ops by default on webgpu', () => {
  it('the library defaults fuseLinear and fuseAttention to webgpu only (either precision); an explicit choice wins', async () => {
    const { resolveOptions } = await import('../src/training/options.js');
    const { defaultFuseLinear } = await import('../src/runtime/session.js');
    expect(resolveOptions({ backend: 'webgpu', precision: 'mixed' }).fuseLinear).toBe(true);
    expect(resolveOptions({ backend: 'webgpu', precision: 'mixed', fuseLinear: false }).fuseLinear).toBe(false);
    expect(resolveOptions({ backend: 'webgpu' }).fuseLinear).toBe(true);
    expect(resolveOptions({ backend: 'cpu', precision: 'mixed' }).fuseLinear).toBe(false);
    expect(resolveOptions({ backend: 'webgpu' }).fuseAttention).toBe(true);
    expect(resolveOptions({ backend: 'webgpu', fuseAttention: false }).fuseAttention).toBe(false);
    expect(resolveOptions({ backend: 'cpu' }).fuseAttention).toBe(false);
    expect(resolveOptions({ backend: 'webgpu', fuse: false }).fuseAttention).toBe(false);
    expect([defaultFuseLinear('webgpu', true), defaultFuseLinear('webgpu', false), defaultFuseLinear('cpu', true)]).toEqual([true, false, false]);
  });
});
