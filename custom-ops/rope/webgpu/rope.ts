/// <reference types="@webgpu/types" />
/**
 * RoPE WGSL kernel, rotate-half layout (math in ../schema.ts; Liger's rope: in place on q and k,
 * backward rotates by −θ). With h = D/2, j < h, c = cos[b, t], s = sin[b, t]:
 *
 *   forward:  y_j   = x_j·c_j   − x_{j+h}·s_j
 *             y_j+h = x_j+h·c_j+h + x_j·s_j+h
 *   backward: dx_j   = dy_j·c_j   + dy_{j+h}·s_j+h
 *             dx_j+h = dy_j+h·c_j+h − dy_j·s_j
 *
 * (with HF's duplicated halves, c_j = c_j+h and s_j = s_j+h: a rotation by θ, and by −θ backward).
 * One invocation per (row, j < h) pair, in place on one buffer, so q and k are two dispatches of
 * the same pipeline. x is [B, heads, S, D] ('bhsd', the op's layout) or [B, S, heads, D] ('bshd');
 * cos/sin are [Bc, S, D] with Bc ∈ {1, B}.
 */
import { fail } from '../../../src/errors.js';
import type { GpuContext } from '../../../src/webgpu/context.js';
import { dispatch1d, type Program } from '../../../src/webgpu/program.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';

const WG = 256;

export interface RopeArgs {
  /** Rotated in place (copy first to keep the input). */
  x: GPUBuffer;
  cos: GPUBuffer;
  sin: GPUBuffer;
  b: number;
  heads: number;
  s: number;
  d: number;
  /** Batch dim of cos/sin: 1 (shared) or b. */
  bc: number;
  layout?: 'bhsd' | 'bshd';
}

function ropeProgram(a: RopeArgs, direction: 'forward' | 'backward'): Program {
  const rows = a.b * a.heads * a.s, half = a.d / 2;
  const back = direction === 'backward';
  return {
    name: 'rope',
    cacheKey: `f32;${direction}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil((rows * half) / WG)),
    uniforms: [
      { name: 'pairs', type: 'u32', value: rows * half },
      { name: 'half', type: 'u32', value: half },
      { name: 's', type: 'u32', value: a.s },
      // position t = (row / tDiv) % s; batch = row / (heads·s)
      { name: 'tDiv', type: 'u32', value: (a.layout ?? 'bhsd') === 'bhsd' ? 1 : a.heads },
      { name: 'rowsPerBatch', type: 'u32', value: a.heads * a.s },
      { name: 'cosBatchStride', type: 'u32', value: a.bc === 1 ? 0 : a.s * a.d },
    ],
    bindings: [
      { name: 'x', access: 'read_write', type: 'f32' },
      { name: 'cosv', access: 'read', type: 'f32' },
      { name: 'sinv', access: 'read', type: 'f32' },
    ],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.pairs) { return; }
  let row = i / u.half; let j = i % u.half;
  let t = (row / u.tDiv) % u.s;
  let cb = (row / u.rowsPerBatch) * u.cosBatchStride + t * 2u * u.half;
  let x1i = row * 2u * u.half + j; let x2i = x1i + u.half;
  let x1 = x[x1i]; let x2 = x[x2i];
  let c1 = cosv[cb + j]; let c2 = cosv[cb + j + u.half];
  let s1 = sinv[cb + j]; let s2 = sinv[cb + j + u.half];
  ${back
        ? 'x[x1i] = x1 * c1 + x2 * s2;\n  x[x2i] = x2 * c2 - x1 * s1;'
        : 'x[x1i] = x1 * c1 - x2 * s1;\n  x[x2i] = x2 * c2 + x1 * s2;'}`,
    }),
  };
}

function run(ctx: GpuContext, a: RopeArgs, direction: 'forward' | 'backward'): void {
  const k = direction === 'forward' ? 'RoPE' : 'RoPEGrad';
  checkDims(k, { b: a.b, heads: a.heads, s: a.s, d: a.d, bc: a.bc });
  if (a.d % 2) fail('usage', `${k}: head dim ${a.d} is odd; rotate-half needs it even`);
  if (a.bc !== 1 && a.bc !== a.b) fail('usage', `${k}: cos/sin batch ${a.bc} must be 1 or ${a.b}`);
  checkU32(k, 'x', a.b * a.heads * a.s * a.d);
  checkBuffer(k, 'x', a.x, a.b * a.heads * a.s * a.d);
  checkBuffer(k, 'cos', a.cos, a.bc * a.s * a.d);
  checkBuffer(k, 'sin', a.sin, a.bc * a.s * a.d);
  ctx.run(ropeProgram(a, direction), [a.x, a.cos, a.sin]);
}

/** x ← RoPE(x) in place (call once for q and once for k). */
export function ropeForward(ctx: GpuContext, a: RopeArgs): void {
  run(ctx, a, 'forward');
}

/** dy ← dx in place: the transpose of the forward rotation (by −θ). `x` holds dy. */
export function ropeBackward(ctx: GpuContext, a: RopeArgs): void {
  run(ctx, a, 'backward');
}
