/// <reference types="@webgpu/types" />
/**
 * SwiGLUMLP WGSL kernels (math in ../schema.ts and ../grad-schema.ts): every projection on our fp32
 * GEMM (src/webgpu/gemm.ts `gemmF32`; see below for precision 'f16'), the activation as one elementwise pass. Rows M = x's
 * leading axes flattened; x [M, H], w_gate and w_up [I, H], w_down [H, I].
 *
 *   forward:  g = x·W_gateᵀ, u = x·W_upᵀ (NT);  u ← silu(g)·u;  y = u·W_downᵀ (NT)
 *   backward: g, u recomputed (NT);  dh = dy·W_down (NN);
 *             (g, u, dh) ← (dg, du, h) in one elementwise pass;
 *             dW_down = dyᵀ·h, dW_gate = dgᵀ·x, dW_up = duᵀ·x (TN);  dx = dg·W_gate + du·W_up (NN, accumulating)
 *
 * The saving forms (SwiGLUMLPKeep, SwiGLUMLPKeepGrad): the forward writes g and u to outputs and
 * the activation to a temporary; the backward reads g and u instead of its first two GEMMs, and
 * works in their buffers when nothing reads them after it (else in two temporaries).
 *
 * The [M, I] intermediates (forward: two, or one kept; backward: three, or one when working in the
 * kept g and u) are temporaries destroyed after the kernel group's submit; only y (and the kept g
 * and u), or the requested gradients, outlive it.
 *
 * Precision 'f16' (`precision`): every GEMM on src/webgpu/gemm-mixed.ts `gemmMixed` (operands
 * rounded to half when staged, fp32 accumulation); the elementwise passes and all buffers stay fp32.
 */
import type { GpuContext } from '../../../src/webgpu/context.js';
import { gemmFor } from '../../../src/webgpu/gemm-mixed.js';
import type { Precision } from '../../precision.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';
import { elementwise } from '../../swiglu/webgpu/swiglu.js';

export interface MlpDims {
  /** Rows (x's leading axes flattened), hidden size, intermediate size. */
  m: number;
  h: number;
  i: number;
}

export interface MlpForwardArgs extends MlpDims {
  x: GPUBuffer;
  wGate: GPUBuffer;
  wUp: GPUBuffer;
  wDown: GPUBuffer;
  /** 'f16': GEMM operands rounded to half (see header); default 'fp32'. */
  precision?: Precision;
}

function checkArgs(k: string, a: MlpForwardArgs): void {
  checkDims(k, { m: a.m, h: a.h, i: a.i });
  checkU32(k, '[M, I]', a.m * a.i);
  checkBuffer(k, 'x', a.x, a.m * a.h);
  checkBuffer(k, 'w_gate', a.wGate, a.i * a.h);
  checkBuffer(k, 'w_up', a.wUp, a.i * a.h);
  checkBuffer(k, 'w_down', a.wDown, a.h * a.i);
}

/** g = x·W_gateᵀ and u = x·W_upᵀ into two new buffers: outputs when `keep`, else temporaries. */
function projections(ctx: GpuContext, a: MlpForwardArgs, keep = false): { g: GPUBuffer; u: GPUBuffer } {
  const { m, h, i } = a;
  const g = keep ? ctx.buffer('mlp.gate', m * i * 4, 'any') : ctx.temp('mlp.gate', m * i * 4, 'any');
  const u = keep ? ctx.buffer('mlp.up', m * i * 4, 'any') : ctx.temp('mlp.up', m * i * 4, 'any');
  const gemm = gemmFor(a.precision);
  gemm(ctx, { m, n: i, k: h, a: { buffer: a.x, ld: h }, b: { buffer: a.wGate, ld: h }, c: { buffer: g, ld: i }, transB: true });
  gemm(ctx, { m, n: i, k: h, a: { buffer: a.x, ld: h }, b: { buffer: a.wUp, ld: h }, c: { buffer: u, ld: i }, transB: true });
  return { g, u };
}

/** y = (silu(x·W_gateᵀ)·(x·W_upᵀ))·W_downᵀ; returns y [M, H]. */
export function swigluMlpForward(ctx: GpuContext, a: MlpForwardArgs): GPUBuffer {
  const k = 'SwiGLUMLP';
  checkArgs(k, a);
  const { m, i } = a;
  const { g, u } = projections(ctx, a);
  ctx.run(elementwise('swiglu_mlp_act', m * i, [
    { name: 'g', access: 'read', type: 'f32' },
    { name: 'up', access: 'read_write', type: 'f32' },
  ], '  let gv = g[i];\n  up[i] = gv * sigmoid(gv) * up[i];'), [g, u]);
  return down(ctx, a, u);
}

/** y = u·W_downᵀ [M, H] from the activation u [M, I]. */
function down(ctx: GpuContext, a: MlpForwardArgs, act: GPUBuffer): GPUBuffer {
  const { m, h, i } = a;
  const y = ctx.buffer('mlp.y', m * h * 4, 'any');
  gemmFor(a.precision)(ctx, { m, n: h, k: i, a: { buffer: act, ld: i }, b: { buffer: a.wDown, ld: i }, c: { buffer: y, ld: h }, transB: true });
  return y;
}

/** SwiGLUMLPKeep: y as {@link swigluMlpForward}, and g = x·W_gateᵀ, u = x·W_upᵀ [M, I] kept for the backward. */
export function swigluMlpForwardKeep(ctx: GpuContext, a: MlpForwardArgs): { y: GPUBuffer; g: GPUBuffer; u: GPUBuffer } {
  const k = 'SwiGLUMLPKeep';
  checkArgs(k, a);
  const { m, i } = a;
  const { g, u } = projections(ctx, a, true);
  const act = ctx.temp('mlp.act', m * i * 4, 'any');
  ctx.run(elementwise('swiglu_mlp_act_keep', m * i, [
    { name: 'g', access: 'read', type: 'f32' },
    { name: 'up', access: 'read', type: 'f32' },
    { name: 'act', access: 'read_write', type: 'f32' },
  ], '  let gv = g[i];\n  act[i] = gv * sigmoid(gv) * up[i];'), [g, u, act]);
  return { y: down(ctx, a, act), g, u };
}

export interface MlpBackwardArgs extends MlpForwardArgs {
  dy: GPUBuffer;
  /** Which gradients to compute (default all): a frozen weight's is skipped, GEMMs included. */
  want?: { dx?: boolean; dwGate?: boolean; dwUp?: boolean; dwDown?: boolean };
  /**
   * SwiGLUMLPKeepGrad: g = x·W_gateᵀ and u = x·W_upᵀ [M, I] from the forward, not recomputed;
   * `overwrite`: nothing reads them after this call, so the pass works in their buffers.
   */
  kept?: { g: GPUBuffer; u: GPUBuffer; overwrite: boolean };
}

export interface MlpGradBuffers {
  dx?: GPUBuffer;
  dwGate?: GPUBuffer;
  dwUp?: GPUBuffer;
  dwDown?: GPUBuffer;
}

/** dg, du and h = silu(g)·u from g, u and dh, for `dg`, `du` and `dh` (same buffers as `g`, `u`: in place). */
const ACT_BWD = (dg: string, du: string) => `  let gv = g[i]; let uv = up[i]; let d = dh[i]; let s = sigmoid(gv);
  dh[i] = gv * s * uv;
  ${dg}[i] = d * uv * s * (1.0 + gv * (1.0 - s));
  ${du}[i] = d * gv * s;`;

/**
 * The gradients of x and the three weights from x, the weights and dy: gate and up recomputed
 * (SwiGLUMLPGrad), or read from `a.kept` (SwiGLUMLPKeepGrad).
 */
export function swigluMlpBackward(ctx: GpuContext, a: MlpBackwardArgs): MlpGradBuffers {
  const k = a.kept ? 'SwiGLUMLPKeepGrad' : 'SwiGLUMLPGrad';
  checkArgs(k, a);
  const { m, h, i } = a;
  checkBuffer(k, 'dy', a.dy, m * h);
  if (a.kept) {
    checkBuffer(k, 'g', a.kept.g, m * i);
    checkBuffer(k, 'u', a.kept.u, m * i);
  }
  const want = { dx: true, dwGate: true, dwUp: true, dwDown: true, ...a.want };
  const dh = ctx.temp('mlp.dh', m * i * 4, 'any');
  const gemm = gemmFor(a.precision);
  gemm(ctx, { m, n: i, k: h, a: { buffer: a.dy, ld: h }, b: { buffer: a.wDown, ld: i }, c: { buffer: dh, ld: i } });
  let g: GPUBuffer, u: GPUBuffer;
  if (!a.kept || a.kept.overwrite) {
    ({ g, u } = a.kept ?? projections(ctx, a));
    // In place: g ← dg, up ← du, dh ← h = silu(g)·u.
    ctx.run(elementwise('swiglu_mlp_act_bwd', m * i, [
      { name: 'g', access: 'read_write', type: 'f32' },
      { name: 'up', access: 'read_write', type: 'f32' },
      { name: 'dh', access: 'read_write', type: 'f32' },
    ], ACT_BWD('g', 'up')), [g, u, dh]);
  } else {
    // The kept g and u are read again later: dg and du into temporaries.
    g = ctx.temp('mlp.dgate', m * i * 4, 'any');
    u = ctx.temp('mlp.dup', m * i * 4, 'any');
    ctx.run(elementwise('swiglu_mlp_act_bwd_kept', m * i, [
      { name: 'g', access: 'read', type: 'f32' },
      { name: 'up', access: 'read', type: 'f32' },
      { name: 'dh', access: 'read_write', type: 'f32' },
      { name: 'dg', access: 'read_write', type: 'f32' },
      { name: 'du', access: 'read_write', type: 'f32' },
    ], ACT_BWD('dg', 'du')), [a.kept.g, a.kept.u, dh, g, u]);
  }
  const out: MlpGradBuffers = {};
  if (want.dwDown) {
    out.dwDown = ctx.buffer('mlp.dw_down', h * i * 4, 'any');
    gemm(ctx, { m: h, n: i, k: m, a: { buffer: a.dy, ld: h }, b: { buffer: dh, ld: i }, c: { buffer: out.dwDown, ld: i }, transA: true });
  }
  if (want.dx) {
    out.dx = ctx.buffer('mlp.dx', m * h * 4, 'any');
    gemm(ctx, { m, n: h, k: i, a: { buffer: g, ld: i }, b: { buffer: a.wGate, ld: h }, c: { buffer: out.dx, ld: h } });
    gemm(ctx, { m, n: h, k: i, a: { buffer: u, ld: i }, b: { buffer: a.wUp, ld: h }, c: { buffer: out.dx, ld: h }, accumulate: true });
  }
  if (want.dwGate) {
    out.dwGate = ctx.buffer('mlp.dw_gate', i * h * 4, 'any');
    gemm(ctx, { m: i, n: h, k: m, a: { buffer: g, ld: i }, b: { buffer: a.x, ld: h }, c: { buffer: out.dwGate, ld: h }, transA: true });
  }
  if (want.dwUp) {
    out.dwUp = ctx.buffer('mlp.dw_up', i * h * 4, 'any');
    gemm(ctx, { m: i, n: h, k: m, a: { buffer: u, ld: i }, b: { buffer: a.x, ld: h }, c: { buffer: out.dwUp, ld: h }, transA: true });
  }
  return out;
}
