/// <reference types="@webgpu/types" />
/**
 * SwiGLUMLP WGSL kernels (math in ../schema.ts and ../grad-schema.ts): every projection on our fp32
 * GEMM (src/webgpu/gemm.ts `gemmF32`), the activation as one elementwise pass. Rows M = x's
 * leading axes flattened; x [M, H], w_gate and w_up [I, H], w_down [H, I].
 *
 *   forward:  g = x·W_gateᵀ, u = x·W_upᵀ (NT);  u ← silu(g)·u;  y = u·W_downᵀ (NT)
 *   backward: g, u recomputed (NT);  dh = dy·W_down (NN);
 *             (g, u, dh) ← (dg, du, h) in one elementwise pass;
 *             dW_down = dyᵀ·h, dW_gate = dgᵀ·x, dW_up = duᵀ·x (TN);  dx = dg·W_gate + du·W_up (NN, accumulating)
 *
 * The [M, I] intermediates (two forward, three backward) are temporaries destroyed after the kernel
 * group's submit; only y, or the requested gradients, outlive it.
 */
import type { GpuContext } from '../../../src/webgpu/context.js';
import { gemmF32 } from '../../../src/webgpu/gemm.js';
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
}

function checkArgs(k: string, a: MlpForwardArgs): void {
  checkDims(k, { m: a.m, h: a.h, i: a.i });
  checkU32(k, '[M, I]', a.m * a.i);
  checkBuffer(k, 'x', a.x, a.m * a.h);
  checkBuffer(k, 'w_gate', a.wGate, a.i * a.h);
  checkBuffer(k, 'w_up', a.wUp, a.i * a.h);
  checkBuffer(k, 'w_down', a.wDown, a.h * a.i);
}

/** g = x·W_gateᵀ and u = x·W_upᵀ into two new temporaries. */
function projections(ctx: GpuContext, a: MlpForwardArgs): { g: GPUBuffer; u: GPUBuffer } {
  const { m, h, i } = a;
  const g = ctx.temp('mlp.gate', m * i * 4);
  const u = ctx.temp('mlp.up', m * i * 4);
  gemmF32(ctx, { m, n: i, k: h, a: { buffer: a.x, ld: h }, b: { buffer: a.wGate, ld: h }, c: { buffer: g, ld: i }, transB: true });
  gemmF32(ctx, { m, n: i, k: h, a: { buffer: a.x, ld: h }, b: { buffer: a.wUp, ld: h }, c: { buffer: u, ld: i }, transB: true });
  return { g, u };
}

/** y = (silu(x·W_gateᵀ)·(x·W_upᵀ))·W_downᵀ; returns y [M, H]. */
export function swigluMlpForward(ctx: GpuContext, a: MlpForwardArgs): GPUBuffer {
  const k = 'SwiGLUMLP';
  checkArgs(k, a);
  const { m, h, i } = a;
  const { g, u } = projections(ctx, a);
  ctx.run(elementwise('swiglu_mlp_act', m * i, [
    { name: 'g', access: 'read', type: 'f32' },
    { name: 'up', access: 'read_write', type: 'f32' },
  ], '  let gv = g[i];\n  up[i] = gv * sigmoid(gv) * up[i];'), [g, u]);
  const y = ctx.buffer('mlp.y', m * h * 4);
  gemmF32(ctx, { m, n: h, k: i, a: { buffer: u, ld: i }, b: { buffer: a.wDown, ld: i }, c: { buffer: y, ld: h }, transB: true });
  return y;
}

export interface MlpBackwardArgs extends MlpForwardArgs {
  dy: GPUBuffer;
  /** Which gradients to compute (default all): a frozen weight's is skipped, GEMMs included. */
  want?: { dx?: boolean; dwGate?: boolean; dwUp?: boolean; dwDown?: boolean };
}

export interface MlpGradBuffers {
  dx?: GPUBuffer;
  dwGate?: GPUBuffer;
  dwUp?: GPUBuffer;
  dwDown?: GPUBuffer;
}

/** The gradients of x and the three weights from x, the weights and dy (gate and up recomputed). */
export function swigluMlpBackward(ctx: GpuContext, a: MlpBackwardArgs): MlpGradBuffers {
  const k = 'SwiGLUMLPGrad';
  checkArgs(k, a);
  const { m, h, i } = a;
  checkBuffer(k, 'dy', a.dy, m * h);
  const want = { dx: true, dwGate: true, dwUp: true, dwDown: true, ...a.want };
  const { g, u } = projections(ctx, a);
  const dh = ctx.temp('mlp.dh', m * i * 4);
  gemmF32(ctx, { m, n: i, k: h, a: { buffer: a.dy, ld: h }, b: { buffer: a.wDown, ld: i }, c: { buffer: dh, ld: i } });
  // In place: g ← dg, up ← du, dh ← h = silu(g)·u.
  ctx.run(elementwise('swiglu_mlp_act_bwd', m * i, [
    { name: 'g', access: 'read_write', type: 'f32' },
    { name: 'up', access: 'read_write', type: 'f32' },
    { name: 'dh', access: 'read_write', type: 'f32' },
  ], `  let gv = g[i]; let uv = up[i]; let d = dh[i]; let s = sigmoid(gv);
  dh[i] = gv * s * uv;
  g[i] = d * uv * s * (1.0 + gv * (1.0 - s));
  up[i] = d * gv * s;`), [g, u, dh]);
  const out: MlpGradBuffers = {};
  if (want.dwDown) {
    out.dwDown = ctx.buffer('mlp.dw_down', h * i * 4);
    gemmF32(ctx, { m: h, n: i, k: m, a: { buffer: a.dy, ld: h }, b: { buffer: dh, ld: i }, c: { buffer: out.dwDown, ld: i }, transA: true });
  }
  if (want.dx) {
    out.dx = ctx.buffer('mlp.dx', m * h * 4);
    gemmF32(ctx, { m, n: h, k: i, a: { buffer: g, ld: i }, b: { buffer: a.wGate, ld: h }, c: { buffer: out.dx, ld: h } });
    gemmF32(ctx, { m, n: h, k: i, a: { buffer: u, ld: i }, b: { buffer: a.wUp, ld: h }, c: { buffer: out.dx, ld: h }, accumulate: true });
  }
  if (want.dwGate) {
    out.dwGate = ctx.buffer('mlp.dw_gate', i * h * 4);
    gemmF32(ctx, { m: i, n: h, k: m, a: { buffer: g, ld: i }, b: { buffer: a.x, ld: h }, c: { buffer: out.dwGate, ld: h }, transA: true });
  }
  if (want.dwUp) {
    out.dwUp = ctx.buffer('mlp.dw_up', i * h * 4);
    gemmF32(ctx, { m: i, n: h, k: m, a: { buffer: u, ld: i }, b: { buffer: a.x, ld: h }, c: { buffer: out.dwUp, ld: h }, transA: true });
  }
  return out;
}
