/// <reference types="@webgpu/types" />
/**
 * Global-norm gradient clipping on the GPU, so the clipping factor never visits the host:
 *
 *   partials[base_t + w] = Σ g_t[k]²   over the grid-stride slice of workgroup w of tensor t
 *   stats[1] = ‖g‖₂ = √Σ partials,  stats[2] = s = (max > 0 ∧ ‖g‖ > max) ? max / (‖g‖ + 1e-6) : 1
 *   g_t ← s · g_t                     (in place, before AdamW; same rule as src/runtime/optimizer.ts)
 *
 * stats is a 16-byte buffer [loss, norm, scale, overflow]; the trainer copies the loss into slot 0
 * and reads the four floats back once per step.
 *
 * Loss scaling (mixed precision; `lossScale` S given): the gradients arrive multiplied by S. The
 * sum of squares runs over g·(1/S) (exact for a power of two, and no spurious overflow of S²·g²),
 * so stats[1] and stats[2] are the norm and clip factor of the unscaled gradients, as an fp32 run
 * computes them; the scale pass leaves the gradients at S (clipped), and AdamW multiplies by 1/S.
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

/** Index in stats of the overflow flag (0: finite so far in this step; 1: a gradient was not). */
export const OVERFLOW_SLOT = 3;

/** WGSL: true when `x` is ±Inf or NaN (exponent bits all ones). */
export const NON_FINITE_WGSL = `
fn nonFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }`;

/** Mixed precision's arguments of the norm kernels: the gradients' 1/S, and the stats buffer whose overflow slot they raise. */
export interface LossScaleArgs {
  invScale: number;
  stats: GPUBuffer;
}

function sumSquaresProgram(n: number, base: number, groups: number, sg: boolean, invScale: number | undefined): Program {
  const scaled = invScale !== undefined;
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
      ...(scaled ? [{ name: 'invScale', type: 'f32' as const, value: invScale }] : []),
    ],
    bindings: [
      { name: 'g', access: 'read', type: 'f32' },
      { name: 'partials', access: 'read_write', type: 'f32' },
      ...(scaled ? [{ name: 'stats', access: 'read_write' as const, type: 'f32' as const }] : []),
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg) + (scaled ? NON_FINITE_WGSL : ''),
      main: `
  var s = 0.0;
  for (var k = wid.x * ${WG}u + lidx; k < u.n; k = k + u.stride) { let x = g[k]${scaled ? ' * u.invScale' : ''}; s = s + x * x; }
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
    stats[1] = norm;
    stats[2] = select(1.0, u.maxNorm / (norm + 1e-6), u.maxNorm > 0.0 && norm > u.maxNorm);
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
  if (k < u.n) { g[k] = g[k] * stats[2]; }`,
    }),
  };
}

export interface NormTensor {
  grad: GPUBuffer;
  /** Elements. */
  size: number;
}

/**
 * Record: global L2 norm of `grads` into stats[1], the clip factor into stats[2], and (when
 * `maxNorm` > 0) every gradient scaled in place by it. `partials` must hold Σ partialCount(size)
 * floats. `lossScale`: the gradients carry the factor S (see the header: norm and clip factor of
 * the unscaled gradients, overflow flag in stats).
 */
export function clipByGlobalNorm(ctx: GpuContext, grads: readonly NormTensor[], partials: GPUBuffer, stats: GPUBuffer, maxNorm: number, lossScale?: number): void {
  const scaled = lossScale === undefined ? undefined : { invScale: 1 / lossScale, stats };
  let base = 0;
  for (const t of grads) base += sumSquares(ctx, t, partials, base, scaled);
  finalizeNorm(ctx, base, partials, stats, maxNorm, !!scaled);
  if (maxNorm > 0) for (const t of grads) ctx.run(scaleProgram(t.size), [t.grad, stats]);
}

/**
 * Record one gradient's sum-of-squares partials into `partials` from `base`; returns how many.
 * `scaled` (mixed precision): of g·invScale, and the overflow slot of `scaled.stats` raised when a
 * partial is not finite.
 */
export function sumSquares(ctx: GpuContext, t: NormTensor, partials: GPUBuffer, base: number, scaled?: LossScaleArgs): number {
  const groups = partialCount(t.size);
  ctx.run(sumSquaresProgram(t.size, base, groups, ctx.subgroups, scaled?.invScale), scaled ? [t.grad, partials, scaled.stats] : [t.grad, partials]);
  return groups;
}

/**
 * Record: the norm of the first `count` partials into stats[1], the clip factor (for `maxNorm`) into
 * stats[2]; `flagOverflow` (mixed precision): the overflow slot raised when the norm is not finite.
 */
export function finalizeNorm(ctx: GpuContext, count: number, partials: GPUBuffer, stats: GPUBuffer, maxNorm: number, flagOverflow = false): void {
  ctx.run(finalizeProgram(count, maxNorm, ctx.subgroups, flagOverflow), [partials, stats]);
}
