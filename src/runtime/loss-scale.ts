/**
 * Dynamic loss scaling for `--precision mixed` (as torch.amp.GradScaler, with its defaults): the
 * backward is seeded with the scale S (the training graph's `loss_scale` input), so every gradient
 * comes out multiplied by S and small ones stay above f16's underflow in the f16-operand GEMMs; the
 * trainer multiplies by 1/S before the norm, clipping and AdamW.
 *
 *   a step whose gradient norm is finite:  applied; after `growthInterval` such steps in a row, S ← 2·S
 *   a step whose gradient norm is not:     skipped (no parameter or moment update), S ← S/2
 *
 * A skipped step still counts as a step of the run (its batch is consumed, the learning-rate
 * schedule moves on, `--steps N` is N batches), but not for AdamW's bias correction: t counts the
 * updates applied (torch's GradScaler skips only optimizer.step() too; the schedule there moves on
 * unless the caller checks). S stays a power of two, so scaling and unscaling are exact. Below
 * `minScale` the run fails 'diverged' naming the step: the gradients are not finite at any scale.
 * No Node imports (the browser trainer uses it too).
 */
import { fail, OrtfuseError } from '../errors.js';
import { LOSS_SCALE } from '../autodiff/names.js';

/** Training precision: 'fp32' everywhere, or 'mixed' (./README: f16 GEMM operands + loss scaling). */
export type Precision = 'fp32' | 'mixed';
export const PRECISIONS: readonly Precision[] = ['fp32', 'mixed'];

export interface LossScaleOptions {
  /** The scale of the first step (default 2^16); a power of two keeps scaling exact. */
  initialScale?: number;
  /** Finite steps in a row after which the scale doubles (default 2000). */
  growthInterval?: number;
  /** Below this the run fails 'diverged' (default 2^-14). */
  minScale?: number;
}

/** What a checkpoint keeps of the scaler (TrainState.scaler). */
export interface LossScalerState {
  scale: number;
  /** Finite steps in a row since the scale last changed. */
  goodSteps: number;
}

export const DEFAULT_LOSS_SCALE = 2 ** 16;
export const DEFAULT_GROWTH_INTERVAL = 2000;
export const MIN_LOSS_SCALE = 2 ** -14;
/** The largest power of two float32 holds: growth stops there. */
export const MAX_LOSS_SCALE = 2 ** 127;

/** Check a user-given initial scale (option initialLossScale): a finite number > 0 that float32 holds. */
export function checkInitialLossScale(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_LOSS_SCALE || v < MIN_LOSS_SCALE)
    fail('usage', `${what} must be a number between 2^-14 and 2^127 (a power of two keeps scaling exact; got ${String(v)})`);
  return v;
}

export class LossScaler {
  scale: number;
  goodSteps = 0;
  readonly growthInterval: number;
  readonly minScale: number;

  constructor(o: LossScaleOptions = {}) {
    this.scale = o.initialScale === undefined ? DEFAULT_LOSS_SCALE : checkInitialLossScale(o.initialScale, 'initialLossScale');
    this.growthInterval = o.growthInterval ?? DEFAULT_GROWTH_INTERVAL;
    this.minScale = o.minScale ?? MIN_LOSS_SCALE;
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) fail('usage', `loss scaling: growthInterval must be an integer ≥ 1 (got ${this.growthInterval})`);
  }

  /** 1/S: what the trainers multiply the gradients by (exact for a power of two). */
  get inverse(): number {
    return 1 / this.scale;
  }

  /**
   * After step `step` (1-based) with gradient norm `norm` (of the unscaled gradients): true when the
   * step must be skipped (norm not finite; the scale was halved), false when it is applied. Throws
   * 'diverged' when halving takes the scale below minScale.
   */
  update(norm: number, step: number): boolean {
    if (Number.isFinite(norm)) {
      if (++this.goodSteps >= this.growthInterval) {
        this.scale = Math.min(this.scale * 2, MAX_LOSS_SCALE);
        this.goodSteps = 0;
      }
      return false;
    }
    this.scale /= 2;
    this.goodSteps = 0;
    if (this.scale < this.minScale)
      throw new OrtfuseError('diverged', `step ${step}: the gradients are not finite even at loss scale ${this.scale * 2} (below it is ${this.scale}, under the floor 2^-14); the model diverged`);
    return true;
  }

  state(): LossScalerState {
    return { scale: this.scale, goodSteps: this.goodSteps };
  }

  restore(s: LossScalerState): void {
    if (!(typeof s?.scale === 'number' && s.scale > 0 && Number.isFinite(s.scale)) || !Number.isInteger(s.goodSteps) || s.goodSteps < 0)
      fail('invalid', `checkpoint: a broken loss-scaler state ${JSON.stringify(s)}`);
    this.scale = s.scale;
    this.goodSteps = s.goodSteps;
  }
}

/**
 * The scaler of a trainer whose training graph has inputs `inputs`: one when the graph takes
 * `loss_scale` (mixed precision), none otherwise; options for a graph without it are refused.
 */
export function lossScalerFor(inputs: readonly string[], o: LossScaleOptions | undefined): LossScaler | undefined {
  const has = inputs.includes(LOSS_SCALE);
  if (!has && o) fail('usage', `loss scaling needs a training graph with the '${LOSS_SCALE}' input (built with lossScaleInput: precision 'mixed')`);
  return has ? new LossScaler(o) : undefined;
}
