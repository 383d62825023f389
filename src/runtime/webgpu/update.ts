/// <reference types="@webgpu/types" />
/**
 * The webgpu trainer's update, recorded around the step's loss and gradients (./trainer.ts):
 * - clipping on (or a single session): every gradient, then the global norm and clip factor into
 *   the stats buffer, then AdamW over all parameters, which multiplies each gradient by the clip
 *   factor as it reads it (src/webgpu/grad-norm.ts `globalNorm`, src/webgpu/adamw.ts);
 * - clipping off on a stage plan: each parameter's sum of squares and AdamW as soon as its gradient
 *   is final (StagedSteps.onGradient), so the full gradient set never lives at once; the norm is
 *   finalized at the end (reported, not applied).
 * Mixed precision (`scaled`): the gradients carry the loss scale S, the norm kernels read 1/S from
 * stats and raise its overflow flag, and AdamW's guard skips the update on the GPU when it is set.
 */
import type * as Ort from 'onnxruntime-web';
import { GRAD_PREFIX } from '../../autodiff/names.js';
import { fail } from '../../errors.js';
import { adamw, type AdamWStep } from '../../webgpu/adamw.js';
import type { GpuContext } from '../../webgpu/context.js';
import { finalizeNorm, globalNorm, partialCount, sumSquares } from '../../webgpu/grad-norm.js';
import { StagedSteps, type StepOutputs, type StepRunner } from './steps.js';

/** One parameter of the trainer: its value and AdamW moments on the GPU, and its feed. */
export interface GpuParam {
  name: string;
  dims: number[];
  size: number;
  value: GPUBuffer;
  /** AdamW moments: none for a frozen input (no gradient output). */
  m?: GPUBuffer;
  v?: GPUBuffer;
  feed: Ort.Tensor;
  hasGrad: boolean;
  noDecay: boolean;
}

export interface UpdateArgs {
  params: readonly GpuParam[];
  /** The norm partials (Σ partialCount over the parameters with a gradient) and the stats buffer (src/webgpu/grad-norm.ts STATS). */
  partials: GPUBuffer;
  stats: GPUBuffer;
  /** The step's AdamW numbers (their scalars already written into stats). */
  hp: AdamWStep;
  /** Global-norm clipping bound (0: none). */
  maxGradNorm: number;
  /** Mixed precision: the gradients carry the loss scale. */
  scaled: boolean;
}

/** Run the step (`run`: the runner's loss and gradients) with the update recorded around it; returns the step's outputs. */
export async function recordStep(ctx: GpuContext, runner: StepRunner, u: UpdateArgs, run: () => Promise<StepOutputs>): Promise<StepOutputs> {
  const clip = u.maxGradNorm > 0;
  const stats = { buffer: u.stats, guard: u.scaled, clip };
  const withGrad = u.params.filter((p) => p.hasGrad);
  const early = runner instanceof StagedSteps && !clip ? runner : undefined;
  const base = new Map<GpuParam, number>();
  let count = 0;
  for (const p of withGrad) (base.set(p, count), (count += partialCount(p.size)));
  const apply = (p: GpuParam, grad: GPUBuffer) => {
    // Mixed: a non-finite partial raises the flag that this AdamW (and every later one) checks.
    sumSquares(ctx, { grad, size: p.size }, u.partials, base.get(p)!, u.scaled ? { stats: u.stats } : undefined);
    adamw(ctx, [{ param: p.value, grad, m: p.m!, v: p.v!, size: p.size, noDecay: p.noDecay }], u.hp, stats);
  };
  const byGrad = new Map(withGrad.map((p) => [GRAD_PREFIX + p.name, p]));
  const applied = new Set<GpuParam>();
  if (early)
    early.onGradient = (name, grad) => {
      const p = byGrad.get(name);
      if (!p) return;
      apply(p, grad);
      applied.add(p);
    };
  let out: StepOutputs;
  try {
    out = await run();
  } finally {
    if (early) early.onGradient = undefined;
  }
  const rest = withGrad.filter((p) => !applied.has(p)).map((p) => ({ p, grad: out.grads.get(GRAD_PREFIX + p.name) ?? fail('runtime', `no gradient '${GRAD_PREFIX + p.name}'`) }));
  if (early) {
    for (const { p, grad } of rest) apply(p, grad);
    finalizeNorm(ctx, count, u.partials, u.stats, 0, u.scaled);
  } else {
    // Mixed: finalize raises the flag on a non-finite global norm before any AdamW runs (whole-step
    // skip). Clipping: AdamW multiplies each gradient by the clip factor as it reads it.
    globalNorm(ctx, rest.map((g) => ({ grad: g.grad, size: g.p.size })), u.partials, u.stats, u.maxGradNorm, u.scaled);
    adamw(ctx, rest.map(({ p, grad }) => ({ param: p.value, grad, m: p.m!, v: p.v!, size: p.size, noDecay: p.noDecay })), u.hp, stats);
  }
  return out;
}
