/// <reference types="@webgpu/types" />
/**
 * Linear WGSL kernels (math in ../schema.ts and ../grad-schema.ts): every product on our GEMM
 * through one local function, `linearGemm`. Rows M = x's leading axes flattened; x [M, K],
 * w [N, K] (transB) or [K, N], bias [N], dy [M, N].
 *
 *   forward:   y ← bias broadcast over rows (linear_bias_rows; skipped without a bias);
 *              y (+)= x·wᵀ (NT) or x·w (NN)
 *   backward:  dx = dy·w (NN) or dy·wᵀ (NT);  dw = dyᵀ·x [N, K] or xᵀ·dy [K, N] (TN);
 *              db = ones[1, M]·dy (NN; fp32 at any precision: split-K spreads the rows over
 *              workgroups, where a thread per column would walk all M rows alone)
 *
 * Only the gradients asked for (`want`) are computed: a frozen weight's dw, the db of a Linear
 * without bias. db's ones [M] are the context's (GpuContext.ones).
 */
import type { GpuContext } from '../../../src/webgpu/context.js';
import { gemmF32 } from '../../../src/webgpu/gemm.js';
import { gemmFor } from '../../../src/webgpu/gemm-mixed.js';
import type { MatmulArgs } from '../../../src/webgpu/matmul.js';
import { dispatch1d, type Program } from '../../../src/webgpu/program.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';
import type { Precision } from '../../precision.js';

const WG = 256;

export interface LinearDims {
  /** Rows (x's leading axes flattened), input features K, output features N. */
  m: number;
  k: number;
  n: number;
  /** w is [N, K] (y = x·wᵀ); false: [K, N]. */
  transB: boolean;
  /** 'f16': the GEMM operands rounded to half, fp32 accumulation (default 'fp32'). */
  precision?: Precision;
}

export interface LinearForwardArgs extends LinearDims {
  x: GPUBuffer;
  w: GPUBuffer;
  bias?: GPUBuffer;
}

export interface LinearBackwardArgs extends LinearDims {
  x: GPUBuffer;
  w: GPUBuffer;
  dy: GPUBuffer;
  /** Which gradients to compute (default dx and dw; db only when asked). */
  want?: { dx?: boolean; dw?: boolean; db?: boolean };
}

export interface LinearGradBuffers {
  dx?: GPUBuffer;
  dw?: GPUBuffer;
  db?: GPUBuffer;
}

/** Every GEMM of the Linear kernels, at the op's precision (src/webgpu/gemm-mixed.ts gemmFor). */
function linearGemm(ctx: GpuContext, args: MatmulArgs, precision: Precision = 'fp32'): void {
  gemmFor(precision)(ctx, args);
}

function checkArgs(kernel: string, a: LinearDims & { x: GPUBuffer; w: GPUBuffer }): void {
  checkDims(kernel, { m: a.m, k: a.k, n: a.n });
  checkU32(kernel, '[M, K]', a.m * a.k);
  checkU32(kernel, '[M, N]', a.m * a.n);
  checkBuffer(kernel, 'x', a.x, a.m * a.k);
  checkBuffer(kernel, 'w', a.w, a.n * a.k);
}

/** y[r, c] = bias[c] for every row: the C of the accumulating GEMM. */
function biasRowsProgram(total: number, n: number): Program {
  return {
    name: 'linear_bias_rows',
    cacheKey: 'f32',
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(total / WG)),
    uniforms: [
      { name: 'total', type: 'u32', value: total },
      { name: 'N', type: 'u32', value: n },
    ],
    bindings: [
      { name: 'bias', access: 'read', type: 'f32' },
      { name: 'y', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.total) { return; }
  y[i] = bias[i % u.N];`,
    }),
  };
}

/** y = x·wᵀ + bias (or x·w + bias); returns y [M, N]. */
export function linearForward(ctx: GpuContext, a: LinearForwardArgs): GPUBuffer {
  const kernel = 'Linear';
  checkArgs(kernel, a);
  const { m, k, n } = a;
  if (a.bias) checkBuffer(kernel, 'bias', a.bias, n);
  const y = ctx.buffer('linear.y', m * n * 4, 'any');
  if (a.bias) ctx.run(biasRowsProgram(m * n, n), [a.bias, y]);
  linearGemm(ctx, { m, n, k, a: { buffer: a.x, ld: k }, b: { buffer: a.w, ld: a.transB ? k : n }, c: { buffer: y, ld: n }, transB: a.transB, accumulate: !!a.bias }, a.precision);
  return y;
}

/** The gradients of x, w and the bias from x, w and dy (those in `want`). */
export function linearBackward(ctx: GpuContext, a: LinearBackwardArgs): LinearGradBuffers {
  const kernel = 'LinearGrad';
  checkArgs(kernel, a);
  const { m, k, n, transB } = a;
  checkBuffer(kernel, 'dy', a.dy, m * n);
  const want = { dx: true, dw: true, db: false, ...a.want };
  const out: LinearGradBuffers = {};
  if (want.dx) {
    out.dx = ctx.buffer('linear.dx', m * k * 4, 'any');
    // dx [M, K] = dy [M, N] · w [N, K], or dy · (w [K, N])ᵀ.
    linearGemm(ctx, { m, n: k, k: n, a: { buffer: a.dy, ld: n }, b: { buffer: a.w, ld: transB ? k : n }, c: { buffer: out.dx, ld: k }, transB: !transB }, a.precision);
  }
  if (want.dw) {
    out.dw = ctx.buffer('linear.dw', n * k * 4, 'any');
    if (transB) linearGemm(ctx, { m: n, n: k, k: m, a: { buffer: a.dy, ld: n }, b: { buffer: a.x, ld: k }, c: { buffer: out.dw, ld: k }, transA: true }, a.precision);
    else linearGemm(ctx, { m: k, n, k: m, a: { buffer: a.x, ld: k }, b: { buffer: a.dy, ld: n }, c: { buffer: out.dw, ld: n }, transA: true }, a.precision);
  }
  if (want.db) {
    out.db = ctx.buffer('linear.db', n * 4, 'any');
    const ones = ctx.ones(m);
    gemmF32(ctx, { m: 1, n, k: m, a: { buffer: ones, ld: m }, b: { buffer: a.dy, ld: n }, c: { buffer: out.db, ld: n } });
  }
  return out;
}
