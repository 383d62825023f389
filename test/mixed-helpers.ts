/**
 * Mixed-precision tests' fixtures: the tiny Qwen2 (optionally with its final norm weight scaled,
 * which scales the logits and so the gradients: ×16 gives gradients up to ~14, so that a loss
 * scale of 2^127 overflows float32), a trainer of either backend built as `ortfuse train` builds
 * it (fused, precision fp32 or mixed), the seeded batches, and state comparisons.
 */
import { expect } from 'vitest';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { mobyDick } from '../src/data/corpus.js';
import type { Batch } from '../src/data/batches.js';
import type { Model } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import type { TrainState } from '../src/runtime/checkpoint.js';
import type { Precision } from '../src/runtime/loss-scale.js';
import { defaultFuseAttention, defaultFuseLinear, defaultFuseMlp, prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer, type TrainerOptions } from '../src/runtime/trainer.js';
import { textBatches } from '../src/training/data.js';

export const TEXT = mobyDick().slice(0, 100_000);

/** The tiny Qwen2 (seed 1) with model.norm.weight multiplied by `normScale`. */
export function tinyModel(normScale = 1): Model {
  const m = buildQwen2(TINY, { seed: 1 });
  if (normScale !== 1) {
    const w = m.graph.initializers.find((v) => v.name === 'model.norm.weight')!;
    const t = w.initializer!;
    w.initializer = Tensor.from(t.dtype, t.dims, Array.from(t.toArray() as Float32Array, (x) => x * normScale));
  }
  return m;
}

export interface Open {
  backend: 'cpu' | 'webgpu';
  precision: Precision;
  clip?: number;
  initialLossScale?: number;
  normScale?: number;
  /** The attention and projections fused as `ortfuse train` fuses them on this backend (its defaults); default: not. */
  trainDefaults?: boolean;
  /** webgpu: TrainerOptions.stepReplay (default: the trainer's, on). */
  stepReplay?: boolean;
}

/** What both trainers offer that the tests use. */
export interface AnyTrainer {
  step: number;
  updates: number;
  train(b: Batch): Promise<{ step: number; loss: number; gradNorm: number; lr: number; lossScale?: number; skipped: boolean }>;
  state(meta: Record<string, unknown>): TrainState | Promise<TrainState>;
  release(): Promise<void>;
}

/** A trainer of the tiny model as runTraining makes one (lr 3e-3, 2 warm-up steps of 8, wd 0.01). */
export async function openTrainer(o: Open): Promise<AnyTrainer & { lossAndGradsOf(b: Batch): Promise<Map<string, Float32Array>> }> {
  const all = o.trainDefaults ? { fuseAttention: defaultFuseAttention(o.backend, true), fuseLinear: defaultFuseLinear(o.backend, true) } : {};
  const p = prepareTraining(tinyModel(o.normScale), { fuse: true, fuseMlp: defaultFuseMlp(o.backend, true), ...all, target: o.backend, precision: o.precision });
  const topts: TrainerOptions = {
    optimizer: { lr: 3e-3, weightDecay: 0.01, maxGradNorm: o.clip ?? 1 },
    schedule: { lr: 3e-3, warmupSteps: 2, totalSteps: 8 },
    ...(o.precision === 'mixed' ? { lossScale: { initialScale: o.initialLossScale } } : {}),
    ...(o.stepReplay !== undefined ? { stepReplay: o.stepReplay } : {}),
  };
  if (o.backend === 'cpu') {
    const t = await CpuTrainer.create(p.train, p.initial, topts);
    return Object.assign(t, { lossAndGradsOf: async (b: Batch) => (await t.lossAndGrads(b)).grads });
  }
  const { createNodeWebGpuTrainer } = await import('../src/runtime/webgpu/ort-web-node.js');
  const t = await createNodeWebGpuTrainer(p.train, p.initial, topts, {}, { batch: 2, seq: 32 });
  return Object.assign(t, { lossAndGradsOf: async (b: Batch) => (await t.gradients(b)).grads });
}

/** The seeded training batches of `ortfuse train --batch 2 --seq 32 --seed 5` on TEXT (bytes tokenizer). */
export async function trainBatches(): Promise<Generator<Batch>> {
  return (await textBatches(TEXT, { tokenizer: 'bytes', batch: 2, seq: 32, seed: 5, vocab: TINY.vocab_size })).train;
}

/** Copies of a trainer's parameters and moments (its state may share arrays it later updates). */
export async function snapshot(t: AnyTrainer): Promise<Map<string, { value: Float32Array; m: Float32Array; v: Float32Array }>> {
  const s = await t.state({});
  return new Map([...s.params].map(([n, p]) => [n, { value: p.value.slice(), m: p.m.slice(), v: p.v.slice() }]));
}

/** The parameters (and moments) of two snapshots are equal bit for bit; `only`: just these names. */
export function expectSameState(a: Awaited<ReturnType<typeof snapshot>>, b: Awaited<ReturnType<typeof snapshot>>, only?: Iterable<string>): void {
  const names = only ? [...only] : [...a.keys()];
  expect(names.length).toBeGreaterThan(0);
  for (const n of names) {
    const [x, y] = [a.get(n)!, b.get(n)!];
    for (const k of ['value', 'm', 'v'] as const) {
      // Bit for bit: compare the float32 bytes (NaN-safe, −0 ≠ +0).
      const same = Buffer.from(x[k].buffer, x[k].byteOffset, x[k].byteLength).equals(Buffer.from(y[k].buffer, y[k].byteOffset, y[k].byteLength));
      if (!same) expect.fail(`${n}.${k} differs`);
    }
  }
}

/**
 * Mixed precision tracks fp32 after a few steps: the largest relative L2 difference over the
 * parameters' values is below `tol` and above 0 (the f16 rounding of the GEMM operands is there).
 */
export function expectCloseState(a: Awaited<ReturnType<typeof snapshot>>, b: Awaited<ReturnType<typeof snapshot>>, tol: number): number {
  let worst = 0;
  for (const [n, x] of a) {
    const y = b.get(n)!.value;
    let d = 0, s = 0;
    for (let i = 0; i < y.length; i++) ((d += (x.value[i] - y[i]) ** 2), (s += x.value[i] ** 2));
    worst = Math.max(worst, Math.sqrt(d / s));
  }
  expect(worst).toBeGreaterThan(0);
  expect(worst).toBeLessThan(tol);
  return worst;
}

/**
 * A mixed run's steps track the fp32 run's: losses within 1e-3 relative, gradient norms within
 * 1e-2 (a missing unscale would put them 2^16 off), the same learning rates, every step at `scale`
 * and none skipped.
 */
export function expectStepsTrack(fp32: readonly StepLike[], mixed: readonly StepLike[], scale: number): void {
  for (const [i, r] of mixed.entries()) {
    expect(Math.abs(r.loss - fp32[i].loss) / fp32[i].loss, `loss ${i + 1}`).toBeLessThan(1e-3);
    expect(Math.abs(r.gradNorm - fp32[i].gradNorm) / fp32[i].gradNorm, `norm ${i + 1}`).toBeLessThan(1e-2);
    expect(r.lr).toBe(fp32[i].lr);
  }
  expect(mixed.map((r) => [r.lossScale, r.skipped])).toEqual(mixed.map(() => [scale, false]));
}

type StepLike = { loss: number; gradNorm: number; lr: number; lossScale?: number; skipped: boolean };

/** Parameters whose value differs between two snapshots. */
export function changed(a: Awaited<ReturnType<typeof snapshot>>, b: Awaited<ReturnType<typeof snapshot>>): string[] {
  return [...a.keys()].filter((n) => a.get(n)!.value.some((x, i) => x !== b.get(n)!.value[i]));
}
