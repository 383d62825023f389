/**
 * Checks of a training run before any work: option ranges, and whether a checkpoint to resume was
 * written by a run with the same model (parameter names and shapes), batch shape, seed and
 * optimizer settings — the conditions under which the resumed run is bit-identical to an
 * uninterrupted one. Every failure is one line naming the option.
 */
import { fail } from '../errors.js';
import { SCHEDULES, type ScheduleKind } from './optimizer.js';
import { checkInitialLossScale, PRECISIONS, type Precision } from './loss-scale.js';

/** What a resumed run must share with the run that wrote the checkpoint (stored in its metadata). */
export interface RunSettings {
  batch: number;
  seq: number;
  seed: number;
  gradAccum: number;
  lr: number;
  warmup: number;
  steps: number;
  schedule: ScheduleKind;
  minLrRatio: number;
  weightDecay: number;
  clip: number;
  /** Training precision (checkpoints of older versions record none: fp32). */
  precision: Precision;
}

/** The CLI flag of each setting, for messages. */
const FLAGS: Record<keyof RunSettings, string> = {
  batch: '--batch', seq: '--seq', seed: '--seed', gradAccum: '--grad-accum', lr: '--lr', warmup: '--warmup',
  steps: '--steps', schedule: '--schedule', minLrRatio: '--min-lr-ratio', weightDecay: '--weight-decay', clip: '--clip',
  precision: '--precision',
};

/** Options of a run as far as the checks here need them (TrainOptions of ./train.ts). */
export interface CheckedOptions {
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
  warmup?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  gradAccum?: number;
  schedule?: string;
  minLrRatio?: number;
  evalEvery?: number;
  saveEvery?: number;
  keepLast?: number;
  /** 'fp32' (default) or 'mixed' (needs fuse). */
  precision?: string;
  /** With precision 'mixed': the loss scale of the first step (default 2^16). */
  initialLossScale?: number;
  fuse?: boolean;
}

/** Default warm-up: min(10, steps/10). */
export function defaultWarmup(steps: number): number {
  return Math.min(10, Math.floor(steps / 10));
}

/** Fail (usage) on an option out of range: lr > 0 finite, steps/batch > 0, seq >= 2, warmup/decay/clip >= 0, ... */
export function checkOptions(o: CheckedOptions): void {
  const int = (v: number | undefined, flag: string, min: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) fail('usage', `${flag} must be an integer >= ${min} (got ${v})`);
  };
  int(o.steps, '--steps', 1);
  int(o.batch, '--batch', 1);
  int(o.seq, '--seq', 2);
  int(o.seed, '--seed', 0);
  int(o.warmup, '--warmup', 0);
  int(o.gradAccum, '--grad-accum', 1);
  int(o.evalEvery, '--eval-every', 0);
  int(o.saveEvery, '--save-every', 0);
  int(o.keepLast, '--keep-last', 0);
  if (!(Number.isFinite(o.lr) && o.lr > 0)) fail('usage', `--lr must be a finite number > 0 (got ${o.lr})`);
  const nonNeg = (v: number | undefined, flag: string) => {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) fail('usage', `${flag} must be a finite number >= 0 (got ${v})`);
  };
  nonNeg(o.weightDecay, '--weight-decay');
  nonNeg(o.maxGradNorm, '--clip');
  if (o.minLrRatio !== undefined && !(o.minLrRatio >= 0 && o.minLrRatio <= 1)) fail('usage', `--min-lr-ratio must be between 0 and 1 (got ${o.minLrRatio})`);
  if (o.schedule !== undefined && !(SCHEDULES as readonly string[]).includes(o.schedule))
    fail('usage', `--schedule ${o.schedule}: expected one of ${SCHEDULES.join(', ')}`);
  if (o.precision !== undefined && !(PRECISIONS as readonly string[]).includes(o.precision))
    fail('usage', `--precision ${o.precision}: expected one of ${PRECISIONS.join(', ')}`);
  if (o.precision === 'mixed' && o.fuse === false) fail('usage', "--precision mixed rounds the fused ops' GEMM operands; it needs fuse (drop --no-fuse)");
  if (o.initialLossScale !== undefined) {
    if (o.precision !== 'mixed') fail('usage', '--initial-loss-scale is an option of --precision mixed');
    checkInitialLossScale(o.initialLossScale, '--initial-loss-scale');
  }
}

/** The settings a checkpoint records and a resumed run must match, with defaults resolved. */
export function runSettings(o: CheckedOptions): RunSettings {
  return {
    batch: o.batch, seq: o.seq, seed: o.seed, gradAccum: o.gradAccum ?? 1,
    lr: o.lr, warmup: o.warmup ?? defaultWarmup(o.steps), steps: o.steps,
    schedule: (o.schedule ?? 'cosine') as ScheduleKind, minLrRatio: o.minLrRatio ?? 0.1,
    weightDecay: o.weightDecay ?? 0.01, clip: o.maxGradNorm ?? 1, precision: (o.precision ?? 'fp32') as Precision,
  };
}

/** A checkpoint's header as read by readCheckpointHeader. */
interface Header {
  step: number;
  meta: Record<string, unknown>;
}

/**
 * Before any work: the checkpoint `file` leaves steps to train and was written with `settings`
 * (each differing option named with both values).
 */
export function checkResume(file: string, h: Header, settings: RunSettings): void {
  if (h.step >= settings.steps)
    fail('usage', `--resume ${file}: the checkpoint is at step ${h.step}, so --steps ${settings.steps} leaves nothing to train (--steps is the total, including the steps already done)`);
  const saved = h.meta.settings as Partial<RunSettings> | undefined;
  if (!saved || typeof saved !== 'object') fail('usage', `--resume ${file}: the checkpoint records no run settings (written by an older ortfuse), so resuming could not be checked to continue the same run`);
  // A checkpoint written before --precision existed was an fp32 run.
  if (saved.precision === undefined) saved.precision = 'fp32';
  const diff = (Object.keys(FLAGS) as (keyof RunSettings)[]).filter((k) => saved[k] !== settings[k]);
  if (diff.length)
    fail('usage', `--resume ${file}: the checkpoint was written with ${diff.map((k) => `${FLAGS[k]} ${saved[k]}`).join(' ')}, this run has ${diff.map((k) => `${FLAGS[k]} ${settings[k]}`).join(' ')} (resume with the same settings)`);
}

/** Parameter names and shapes, as a checkpoint records them. */
export type ParamShapes = [name: string, dims: number[]][];

/** After the graph is built: the checkpoint's parameters are the model's (names and shapes). */
export function checkResumeModel(file: string, h: Header, params: ParamShapes): void {
  const saved = h.meta.params as ParamShapes | undefined;
  if (!Array.isArray(saved)) fail('usage', `--resume ${file}: the checkpoint records no parameter shapes (written by an older ortfuse)`);
  const mine = new Map(params.map(([n, d]) => [n, d.join(',')]));
  const theirs = new Map(saved.map(([n, d]) => [n, d.join(',')]));
  for (const [n, d] of mine) {
    const t = theirs.get(n);
    if (t === undefined) fail('usage', `--resume ${file}: the checkpoint is of another model (it has no parameter '${n}')`);
    if (t !== d) fail('usage', `--resume ${file}: the checkpoint is of another model (parameter '${n}' is [${t}] there, [${d}] here)`);
  }
  for (const n of theirs.keys()) if (!mine.has(n)) fail('usage', `--resume ${file}: the checkpoint is of another model (parameter '${n}' is not in this one)`);
}
