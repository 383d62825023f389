/// <reference types="@webgpu/types" />
/**
 * SwiGLU WGSL kernels (math in ../schema.ts; Liger's swiglu: save only the pre-activations and
 * recompute the sigmoid in backward):
 *
 *   forward:  y     = g·σ(g)·u
 *   backward: dgate = dy·u·σ(g)·(1 + g·(1 − σ(g))),   dup = dy·g·σ(g)
 *
 * Elementwise over n = #elements of gate (= up = y), one invocation per element.
 */
import type { GpuContext } from '../../../src/webgpu/context.js';
import { dispatch1d, type Program } from '../../../src/webgpu/program.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';

const WG = 256;

// exp of a non-positive argument only: no overflow for large |v|.
const SIGMOID = `fn sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}`;

/** A one-invocation-per-element program over n elements with `sigmoid` in scope (also the SwiGLU MLP's activation passes). */
export function elementwise(name: string, n: number, bindings: Program['bindings'], body: string): Program {
  return {
    name,
    cacheKey: 'f32',
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(n / WG)),
    uniforms: [{ name: 'n', type: 'u32', value: n }],
    bindings,
    source: () => ({
      decls: SIGMOID,
      main: `  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;\n  if (i >= u.n) { return; }\n${body}`,
    }),
  };
}

export interface SwigluForwardArgs {
  gate: GPUBuffer;
  up: GPUBuffer;
  /** Number of elements. */
  n: number;
  /** Output buffer (allocated when absent). */
  y?: GPUBuffer;
}

/** y = silu(gate)·up; returns y. */
export function swigluForward(ctx: GpuContext, a: SwigluForwardArgs): GPUBuffer {
  const k = 'SwiGLU';
  checkDims(k, { n: a.n });
  checkU32(k, 'gate', a.n);
  checkBuffer(k, 'gate', a.gate, a.n);
  checkBuffer(k, 'up', a.up, a.n);
  const y = a.y ? checkBuffer(k, 'y', a.y, a.n) : ctx.buffer('swiglu.y', a.n * 4, 'any');
  const p = elementwise('swiglu_fwd', a.n, [
    { name: 'gate', access: 'read', type: 'f32' },
    { name: 'up', access: 'read', type: 'f32' },
    { name: 'y', access: 'read_write', type: 'f32' },
  ], '  let g = gate[i];\n  y[i] = g * sigmoid(g) * up[i];');
  ctx.run(p, [a.gate, a.up, y]);
  return y;
}

export interface SwigluBackwardArgs {
  gate: GPUBuffer;
  up: GPUBuffer;
  dy: GPUBuffer;
  n: number;
  dGate?: GPUBuffer;
  dUp?: GPUBuffer;
}

/** Gradients of gate and up from the saved pre-activations (sigmoid recomputed). */
export function swigluBackward(ctx: GpuContext, a: SwigluBackwardArgs): { dGate: GPUBuffer; dUp: GPUBuffer } {
  const k = 'SwiGLUGrad';
  checkDims(k, { n: a.n });
  checkU32(k, 'gate', a.n);
  for (const [name, b] of [['gate', a.gate], ['up', a.up], ['dy', a.dy]] as const) checkBuffer(k, name, b, a.n);
  const dGate = a.dGate ? checkBuffer(k, 'dGate', a.dGate, a.n) : ctx.buffer('swiglu.dGate', a.n * 4, 'any');
  const dUp = a.dUp ? checkBuffer(k, 'dUp', a.dUp, a.n) : ctx.buffer('swiglu.dUp', a.n * 4, 'any');
  const p = elementwise('swiglu_bwd', a.n, [
    { name: 'gate', access: 'read', type: 'f32' },
    { name: 'up', access: 'read', type: 'f32' },
    { name: 'dy', access: 'read', type: 'f32' },
    { name: 'dGate', access: 'read_write', type: 'f32' },
    { name: 'dUp', access: 'read_write', type: 'f32' },
  ], `  let g = gate[i]; let s = sigmoid(g); let d = dy[i];
  dGate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
  dUp[i] = d * g * s;`);
  ctx.run(p, [a.gate, a.up, a.dy, dGate, dUp]);
  return { dGate, dUp };
}
