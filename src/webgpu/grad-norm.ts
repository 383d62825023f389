/// <reference types="@webgpu/types" />
/**
 * Global-norm gradient clipping on the GPU, so the clipping factor never visits the host:
 *
 *   partials[base_t + w] = Σ g_t[k]²   over the grid-stride slice of workgroup w of tensor t
 *   stats[1] = ‖g‖₂ = √Σ partials,  stats[2] = s = (max > 0 ∧ ‖g‖ > max) ? max / (‖g‖ + 1e-6) : 1
 *   g_t ← s · g_t                     (in place, before AdamW; same rule as src/runtime/optimizer.ts)
 *
 * stats is a 32-byte buffer (STATS): [loss, norm, clip, overflow] that the trainer reads back once
 * per step (it copies the loss into slot 0), then the step's scalars the host writes before the
 * step (lr, c1, c2, gradScale: ./adamw.ts). The trainer does not run the scale pass: AdamW reads
 * the clip slot as it reads each gradient (`globalNorm` + AdamWStats.clip).
 *
 * Loss scaling (mixed precision; `scaled`): the gradients arrive multiplied by S, and the stats'
 * gradScale slot holds 1/S. The sum of squares runs over g·(1/S) (exact for a power of two, and no
 * spurious overflow of S²·g²), so stats[1] and stats[2] are the norm and clip factor of the
 * unscaled gradients, as an fp32 run computes them; the gradients stay at S (clipped), and AdamW
 * multiplies by 1/S. 1/S is read from the buffer, not a uniform, so no recorded command changes
 * when the scale does.
 * An overflow sets stats[3] = 1 (the trainer zeroes it before the step): each sum-of-squares
 * dispatch whose partial is not finite, and finalize when ‖g‖ is not. AdamW's guard reads it
 * (./adamw.ts). WGSL has no isinf/isnan: a float is not finite when its exponent bits are all ones.
 */
import type { GpuContext } from './context.js';
import { dispatch1d, type Program } from './program.js';
import { reduceArgs, reductionWgsl } from './reduce.js';

const WG = 256;
/** Workgroups per tensor of the sum-of-squares pass (each strides over its share). */
export const MAX_GROUPS = 256;

/** Partial sums a tensor of `n` elements needs. */
export function partialCount(n: number): number {
  return Math.max(1, Math.min(MAX_GROUPS, Math.ceil(n / WG)));
}

/**
 * The stats buffer's float slots: loss, norm and clip factor (read back each step), the overflow
 * flag (0: finite so far in this step; 1: a gradient was not), and the step's scalars the host
 * writes before each step: AdamW's lr and bias corrections c1 = 1−β1ᵗ, c2 = 1−β2ᵗ, and the factor
 * every gradient is multiplied by (1/S under loss scaling, else 1).
 */
export const STATS = { loss: 0, norm: 1, clip: 2, overflow: 3, lr: 4, c1: 5, c2: 6, gradScale: 7 } as const;
/** Floats in a stats buffer. */
export const STATS_FLOATS = 8;
/** Index in stats of the overflow flag. */
export const OVERFLOW_SLOT = STATS.overflow;

/** WGSL: true when `x` is ±Inf or NaN (exponent bits all ones). */
export const NON_FINITE_WGSL = `
fn nonFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }`;

/** Mixed precision's argument of the norm kernels: the stats buffer holding the gradients' 1/S (STATS.gradScale), whose overflow slot they raise. */
export interface LossScaleArgs {
  stats: GPUBuffer;
}

function sumSquaresProgram(n: number, base: number, groups: number, sg: boolean, scaled: boolean): Program {
  return {
    name: 'grad-norm.sumsq',
    cacheKey: scaled ? 'f32-scaled' : 'f32',
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: [groups, 1, 1],
    uniforms: [
      { name: 'n', type: 'u32', value: n },
      { name: 'base', type: 'u32', value: base },
      { name: 'stride', type: 'u32', value: groups * WG },
    ],
    bindings: [
      { name: 'g', access: 'read', type: 'f32' },
      { name: 'partials', access: 'read_write', type: 'f32' },
      ...(scaled ? [{ name: 'stats', access: 'read_write' as const, type: 'f32' as const }] : []),
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg) + (scaled ? NON_FINITE_WGSL : ''),
      main: `
  var s = 0.0;${scaled ? `
  let invScale = stats[${STATS.gradScale}];` : ''}
  for (var k = wid.x * ${WG}u + lidx; k < u.n; k = k + u.stride) { let x = g[k]${scaled ? ' * invScale' : ''}; s = s + x * x; }
  let total = wg_sum(s, ${reduceArgs(sg)});
  if (lidx == 0u) { partials[u.base + wid.x] = total;${scaled ? ` if (nonFinite(total)) { stats[${OVERFLOW_SLOT}] = 1.0; }` : ''} }`,
    }),
  };
}

function finalizeProgram(count: number, maxNorm: number, sg: boolean, scaled: boolean): Program {
  return {
    name: 'grad-norm.finalize',
    cacheKey: scaled ? 'f32-scaled' : 'f32',
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: [1, 1, 1],
    uniforms: [
      { name: 'count', type: 'u32', value: count },
      { name: 'maxNorm', type: 'f32', value: maxNorm },
    ],
    bindings: [
      { name: 'partials', access: 'read', type: 'f32' },
      { name: 'stats', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg) + (scaled ? NON_FINITE_WGSL : ''),
      main: `
  var s = 0.0;
  for (var k = lidx; k < u.count; k = k + ${WG}u) { s = s + partials[k]; }
  let total = wg_sum(s, ${reduceArgs(sg)});
  if (lidx == 0u) {
    let norm = sqrt(total);${scaled ? `
    if (nonFinite(norm)) { stats[${OVERFLOW_SLOT}] = 1.0; }` : ''}
    stats[${STATS.norm}] = norm;
    stats[${STATS.clip}] = select(1.0, u.maxNorm / (norm + 1e-6), u.maxNorm > 0.0 && norm > u.maxNorm);
  }`,
    }),
  };
}

function scaleProgram(n: number): Program {
  return {
    name: 'grad-norm.scale',
    cacheKey: 'f32',
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(n / WG)),
    uniforms: [{ name: 'n', type: 'u32', value: n }],
    bindings: [
      { name: 'g', access: 'read_write', type: 'f32' },
      { name: 'stats', access: 'read', type: 'f32' },
    ],
    source: () => ({
      main: `
  let k = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (k < u.n) { g[k] = g[k] * stats[${STATS.clip}]; }`,
    }),
  };
}

export interface NormTensor {
  grad: GPUBuffer;
  /** Elements. */
  size: number;
}

/**
 * Record: global L2 norm of `grads` into stats[norm], the clip factor into stats[clip], and (when
 * `maxNorm` > 0) every gradient scaled in place by it. `partials` must hold Σ partialCount(size)
 * floats. `scaled` (mixed precision): the gradients carry the factor S and stats[gradScale] holds
 * 1/S (see the header: norm and clip factor of the unscaled gradients, overflow flag in stats).
 */
export function clipByGlobalNorm(ctx: GpuContext, grads: readonly NormTensor[], partials: GPUBuffer, stats: GPUBuffer, maxNorm: number, scaled = false): void {
  globalNorm(ctx, grads, partials, stats, maxNorm, scaled);
  if (maxNorm > 0) for (const t of grads) ctx.run(scaleProgram(t.size), [t.grad, stats]);
}

/** clipByGlobalNorm without the scale pass: the norm and clip factor into stats, the gradients left as they are (AdamW applies the factor: AdamWStats.clip). */
export function globalNorm(ctx: GpuContext, grads: readonly NormTensor[], partials: GPUBuffer, stats: GPUBuffer, maxNorm: number, scaled = false): void {
  let base = 0;
  for (const t of grads) base += sumSquares(ctx, t, partials, base, scaled ? { stats } : undefined);
  finalizeNorm(ctx, base, partials, stats, maxNorm, scaled);
}

/**
 * Record one gradient's sum-of-squares partials into `partials` from `base`; returns how many.
 * `scaled` (mixed precision): of g·(1/S), 1/S read from `scaled.stats` (STATS.gradScale), whose
 * overflow slot is raised when a partial is not finite.
 */
export function sumSquares(ctx: GpuContext, t: NormTensor, partials: GPUBuffer, base: number, scaled?: LossScaleArgs): number {
  const groups = partialCount(t.size);
  ctx.run(sumSquaresProgram(t.size, base, groups, ctx.subgroups, !!scaled), scaled ? [t.grad, partials, scaled.stats] : [t.grad, partials]);
  return groups;
}

/**
 * Record: the norm of the first `count` partials into stats[norm], the clip factor (for `maxNorm`)
 * into stats[clip]; `flagOverflow` (mixed precision): the overflow slot raised when the norm is not
 * finite.
 */
export function finalizeNorm(ctx: GpuContext, count: number, partials: GPUBuffer, stats: GPUBuffer, maxNorm: number, flagOverflow = false): void {
  ctx.run(finalizeProgram(count, maxNorm, ctx.subgroups, flagOverflow), [partials, stats]);
}
