/// <reference types="@webgpu/types" />
/**
 * Global-norm gradient clipping on the GPU, so the clipping factor never visits the host:
 *
 *   partials[base_t + w] = Σ g_t[k]²   over the grid-stride slice of workgroup w of tensor t
 *   stats[1] = ‖g‖₂ = √Σ partials,  stats[2] = s = (max > 0 ∧ ‖g‖ > max) ? max / (‖g‖ + 1e-6) : 1
 *   g_t ← s · g_t                     (in place, before AdamW; same rule as src/runtime/optimizer.ts)
 *
 * stats is a 16-byte buffer [loss, norm, scale, 0]; the trainer copies the loss into slot 0 and
 * reads the four floats back once per step.
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

function sumSquaresProgram(n: number, base: number, groups: number, sg: boolean): Program {
  return {
    name: 'grad-norm.sumsq',
    cacheKey: 'f32',
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
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg),
      main: `
  var s = 0.0;
  for (var k = wid.x * ${WG}u + lidx; k < u.n; k = k + u.stride) { let x = g[k]; s = s + x * x; }
  let total = wg_sum(s, ${reduceArgs(sg)});
  if (lidx == 0u) { partials[u.base + wid.x] = total; }`,
    }),
  };
}

function finalizeProgram(count: number, maxNorm: number, sg: boolean): Program {
  return {
    name: 'grad-norm.finalize',
    cacheKey: 'f32',
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
      decls: reductionWgsl(WG, sg),
      main: `
  var s = 0.0;
  for (var k = lidx; k < u.count; k = k + ${WG}u) { s = s + partials[k]; }
  let total = wg_sum(s, ${reduceArgs(sg)});
  if (lidx == 0u) {
    let norm = sqrt(total);
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
 * floats.
 */
export function clipByGlobalNorm(ctx: GpuContext, grads: readonly NormTensor[], partials: GPUBuffer, stats: GPUBuffer, maxNorm: number): void {
  let base = 0;
  for (const t of grads) base += sumSquares(ctx, t, partials, base);
  finalizeNorm(ctx, base, partials, stats, maxNorm);
  if (maxNorm > 0) for (const t of grads) ctx.run(scaleProgram(t.size), [t.grad, stats]);
}

/** Record one gradient's sum-of-squares partials into `partials` from `base`; returns how many. */
export function sumSquares(ctx: GpuContext, t: NormTensor, partials: GPUBuffer, base: number): number {
  const groups = partialCount(t.size);
  ctx.run(sumSquaresProgram(t.size, base, groups, ctx.subgroups), [t.grad, partials]);
  return groups;
}

/** Record: the norm of the first `count` partials into stats[1], the clip factor (for `maxNorm`) into stats[2]. */
export function finalizeNorm(ctx: GpuContext, count: number, partials: GPUBuffer, stats: GPUBuffer, maxNorm: number): void {
  ctx.run(finalizeProgram(count, maxNorm, ctx.subgroups), [partials, stats]);
}
