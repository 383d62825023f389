/// <reference types="@webgpu/types" />
/**
 * RMSNorm WGSL kernels over the last axis (math in ../schema.ts; Liger's rms_norm design):
 *
 *   forward:  rstd_r = (mean_j x_rj² + eps)^(−1/2)   (saved, one fp32 per row)
 *             y_rj   = w_j · (x_rj · rstd_r)
 *   backward: c_r    = rstd_r² · mean_j(dy_rj · w_j · x_rj)   (rstd saved, or recomputed from x)
 *             dx_rj  = rstd_r · (dy_rj · w_j − x_rj · c_r)
 *             dw_j   = Σ_r dy_rj · x_rj · rstd_r
 *
 * Forward: one workgroup per row (row sum through wg_sum, subgroups where offered). Backward:
 * G workgroups each take a contiguous block of rows, write dx and accumulate their dw partial in
 * the row of a [G, D] scratch that only they touch; a second kernel sums the G partials per column
 * (8 lanes a column, four loads in flight each).
 */
import { fail } from '../../../src/errors.js';
import type { GpuContext } from '../../../src/webgpu/context.js';
import { dispatch1d, type Program } from '../../../src/webgpu/program.js';
import { reduceArgs, reductionWgsl } from '../../../src/webgpu/reduce.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';

const WG = 256;
/** Upper bound on backward workgroups (and rows of the dw scratch). */
export const RMSNORM_BWD_GROUPS = 512;
/** The dw column sum's workgroup: SUM_COLS columns × SUM_LANES lanes (= WG). */
const SUM_COLS = 32, SUM_LANES = WG / SUM_COLS;

export interface RmsNormForwardArgs {
  x: GPUBuffer;
  weight: GPUBuffer;
  rows: number;
  d: number;
  eps: number;
  y?: GPUBuffer;
  rstd?: GPUBuffer;
}

/** y and the saved rstd [rows]. */
export function rmsNormForward(ctx: GpuContext, a: RmsNormForwardArgs): { y: GPUBuffer; rstd: GPUBuffer } {
  const k = 'RMSNorm';
  checkDims(k, { rows: a.rows, d: a.d });
  checkU32(k, 'x', a.rows * a.d);
  checkBuffer(k, 'x', a.x, a.rows * a.d);
  checkBuffer(k, 'weight', a.weight, a.d);
  const y = a.y ? checkBuffer(k, 'y', a.y, a.rows * a.d) : ctx.buffer('rmsnorm.y', a.rows * a.d * 4, 'any');
  const rstd = a.rstd ? checkBuffer(k, 'rstd', a.rstd, a.rows) : ctx.buffer('rmsnorm.rstd', a.rows * 4, 'any');
  const sg = ctx.subgroups;
  const p: Program = {
    name: 'rmsnorm_fwd',
    cacheKey: 'f32',
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: dispatch1d(a.rows),
    uniforms: [
      { name: 'rows', type: 'u32', value: a.rows },
      { name: 'd', type: 'u32', value: a.d },
      { name: 'eps', type: 'f32', value: a.eps },
    ],
    bindings: [
      { name: 'x', access: 'read', type: 'f32' },
      { name: 'w', access: 'read', type: 'f32' },
      { name: 'y', access: 'read_write', type: 'f32' },
      { name: 'rstd', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg),
      main: `
  let r = flatWorkgroup(wid, nwg);
  if (r >= u.rows) { return; }  // uniform: whole workgroup
  let base = r * u.d;
  var ss = 0.0;
  for (var j = lidx; j < u.d; j += ${WG}u) { let v = x[base + j]; ss = fma(v, v, ss); }
  let total = wg_sum(ss, ${reduceArgs(sg)});
  let rs = 1.0 / sqrt(total / f32(u.d) + u.eps);
  for (var j = lidx; j < u.d; j += ${WG}u) { y[base + j] = w[j] * (x[base + j] * rs); }
  if (lidx == 0u) { rstd[r] = rs; }`,
    }),
  };
  ctx.run(p, [a.x, a.weight, y, rstd]);
  return { y, rstd };
}

export interface RmsNormBackwardArgs {
  x: GPUBuffer;
  weight: GPUBuffer;
  /** The forward's saved rstd [rows]; absent: recomputed from x with `eps` (RMSNormGrad's inputs). */
  rstd?: GPUBuffer;
  eps?: number;
  dy: GPUBuffer;
  rows: number;
  d: number;
  dx?: GPUBuffer;
  dWeight?: GPUBuffer;
  /** dWeight += Σ instead of = (gradient accumulation, tied weights). */
  accumulate?: boolean;
}

/** dx [rows, d] and dWeight [d]. */
export function rmsNormBackward(ctx: GpuContext, a: RmsNormBackwardArgs): { dx: GPUBuffer; dWeight: GPUBuffer } {
  const k = 'RMSNormGrad';
  const { rows, d } = a;
  checkDims(k, { rows, d });
  checkU32(k, 'x', rows * d);
  checkBuffer(k, 'x', a.x, rows * d);
  checkBuffer(k, 'dy', a.dy, rows * d);
  checkBuffer(k, 'weight', a.weight, d);
  const recompute = !a.rstd;
  if (recompute && !(Number(a.eps) >= 0)) fail('usage', `${k}: without a saved rstd, eps must be given (got ${a.eps})`);
  if (a.rstd) checkBuffer(k, 'rstd', a.rstd, rows);
  const dx = a.dx ? checkBuffer(k, 'dx', a.dx, rows * d) : ctx.buffer('rmsnorm.dx', rows * d * 4, 'any');
  const dWeight = a.dWeight ? checkBuffer(k, 'dWeight', a.dWeight, d) : ctx.buffer('rmsnorm.dWeight', d * 4, a.accumulate ? 'zero' : 'any');
  const perGroup = Math.ceil(rows / Math.min(rows, RMSNORM_BWD_GROUPS));
  const groups = Math.ceil(rows / perGroup);
  const partial = ctx.scratch('rmsnorm.dWeightPartial', groups * d * 4, 'any');
  const sg = ctx.subgroups;
  const rowsProgram: Program = {
    name: 'rmsnorm_bwd_rows',
    cacheKey: `f32;recompute=${recompute ? 1 : 0}`,
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: dispatch1d(groups),
    uniforms: [
      { name: 'rows', type: 'u32', value: rows },
      { name: 'd', type: 'u32', value: d },
      { name: 'perGroup', type: 'u32', value: perGroup },
      { name: 'eps', type: 'f32', value: a.eps ?? 0 },
    ],
    bindings: [
      { name: 'x', access: 'read', type: 'f32' },
      { name: 'w', access: 'read', type: 'f32' },
      ...(recompute ? [] : [{ name: 'rstd', access: 'read', type: 'f32' } as const]),
      { name: 'dy', access: 'read', type: 'f32' },
      { name: 'dx', access: 'read_write', type: 'f32' },
      { name: 'partial', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg),
      main: `
  let g = flatWorkgroup(wid, nwg);
  let r0 = g * u.perGroup;
  let r1 = min(r0 + u.perGroup, u.rows);
  let pbase = g * u.d;
  for (var r = r0; r < r1; r++) {
    let base = r * u.d;
    ${recompute
        ? `var ss = 0.0;
    for (var j = lidx; j < u.d; j += ${WG}u) { let v = x[base + j]; ss = fma(v, v, ss); }
    let rs = 1.0 / sqrt(wg_sum(ss, ${reduceArgs(sg)}) / f32(u.d) + u.eps);`
        : 'let rs = rstd[r];'}
    var dot = 0.0;
    for (var j = lidx; j < u.d; j += ${WG}u) { dot = fma(dy[base + j] * w[j], x[base + j], dot); }
    let c = rs * rs * wg_sum(dot, ${reduceArgs(sg)}) / f32(u.d);
    for (var j = lidx; j < u.d; j += ${WG}u) {
      let xv = x[base + j]; let dyv = dy[base + j];
      dx[base + j] = rs * (dyv * w[j] - xv * c);
      let pw = dyv * xv * rs;
      if (r == r0) { partial[pbase + j] = pw; } else { partial[pbase + j] += pw; }
    }
  }`,
    }),
  };
  ctx.run(rowsProgram, [a.x, a.weight, ...(a.rstd ? [a.rstd] : []), a.dy, dx, partial]);
  // The column sums of the [G, D] partials: SUM_COLS columns a workgroup, SUM_LANES lanes each taking
  // every SUM_LANES-th partial row with four loads in flight, then the lanes added in order. (One
  // thread a column walking all G rows in sequence took ~150 µs a call on the H200, 0.5B 8×512:
  // G = 512 dependent L2 loads; rmsNormGrad was 7.3 ms of a 491 ms step, session 12's profile.)
  const sumProgram: Program = {
    name: 'rmsnorm_bwd_dweight',
    cacheKey: `f32;acc=${a.accumulate ? 1 : 0}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(d / SUM_COLS)),
    uniforms: [
      { name: 'groups', type: 'u32', value: groups },
      { name: 'd', type: 'u32', value: d },
    ],
    bindings: [
      { name: 'partial', access: 'read', type: 'f32' },
      { name: 'dw', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: `var<workgroup> lanes: array<f32, ${WG}>;`,
      main: `
  let col = lidx % ${SUM_COLS}u;
  let lane = lidx / ${SUM_COLS}u;
  let j = flatWorkgroup(wid, nwg) * ${SUM_COLS}u + col;
  var s0 = 0.0; var s1 = 0.0; var s2 = 0.0; var s3 = 0.0;
  if (j < u.d) {
    var g = lane;
    for (; g + ${3 * SUM_LANES}u < u.groups; g += ${4 * SUM_LANES}u) {
      s0 += partial[g * u.d + j];
      s1 += partial[(g + ${SUM_LANES}u) * u.d + j];
      s2 += partial[(g + ${2 * SUM_LANES}u) * u.d + j];
      s3 += partial[(g + ${3 * SUM_LANES}u) * u.d + j];
    }
    for (; g < u.groups; g += ${SUM_LANES}u) { s0 += partial[g * u.d + j]; }
  }
  lanes[lidx] = (s0 + s1) + (s2 + s3);
  workgroupBarrier();
  if (lane == 0u && j < u.d) {
    var s = 0.0;
    for (var l = 0u; l < ${SUM_LANES}u; l++) { s += lanes[l * ${SUM_COLS}u + col]; }
    ${a.accumulate ? 'dw[j] += s;' : 'dw[j] = s;'}
  }`,
    }),
  };
  ctx.run(sumProgram, [partial, dWeight]);
  return { dx, dWeight };
}
