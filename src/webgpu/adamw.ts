/// <reference types="@webgpu/types" />
/**
 * Multi-tensor AdamW on the GPU, in place on params, m and v (the same update as the cpu backend's
 * src/runtime/optimizer.ts; Loshchilov & Hutter, https://arxiv.org/abs/1711.05101):
 *
 *   g ← s·g                      (s = gradScale, e.g. a clipping factor; 1 by default)
 *   m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
 *   p ← p − lr·( (m/c1) / (√(v/c2) + ε) + wd·p ),   c1 = 1−β1ᵗ, c2 = 1−β2ᵗ
 *
 * One pipeline and one compute pass for all tensors; tensors that sit back to back in the same
 * four buffers (an arena holding every parameter at the same offsets as its grad, m and v) with the
 * same weight decay merge into one dispatch. Step scalars are uniforms, so nothing is recompiled
 * between steps.
 *
 * Guard (mixed precision's overflow skip, without a host round trip): with `guard`, the stats
 * buffer of ./grad-norm.ts, every invocation first reads its overflow slot and returns without
 * touching p, m or v when it is set (a gradient of this step was not finite).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { dispatch1d, type Program } from './program.js';
import { checkBuffer } from './validate.js';

export interface AdamWTensor {
  param: GPUBuffer;
  grad: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  /** Elements. */
  size: number;
  /** Element offset of this tensor in all four buffers (arena layout); default 0. */
  offset?: number;
  /** No weight decay (norm weights, biases). */
  noDecay?: boolean;
}

export interface AdamWStep {
  /** 1-based step number t. */
  step: number;
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Multiplies every gradient (global-norm clipping factor, or the loss scale's 1/S); default 1. */
  gradScale?: number;
}

/** The overflow flag AdamW checks: a buffer whose float at `slot` is non-zero when the step must not update. */
export interface AdamWGuard {
  flag: GPUBuffer;
  slot: number;
}

const WG = 256;

function adamwProgram(size: number, offset: number, wd: number, s: Required<AdamWStep>, guardSlot: number | undefined): Program {
  const guarded = guardSlot !== undefined;
  return {
    name: 'adamw',
    cacheKey: guarded ? `f32-guard${guardSlot}` : 'f32',
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(size / WG)),
    uniforms: [
      { name: 'n', type: 'u32', value: size },
      { name: 'offset', type: 'u32', value: offset },
      { name: 'lr', type: 'f32', value: s.lr },
      { name: 'beta1', type: 'f32', value: s.beta1 },
      { name: 'beta2', type: 'f32', value: s.beta2 },
      { name: 'eps', type: 'f32', value: s.eps },
      { name: 'wd', type: 'f32', value: wd },
      { name: 'c1', type: 'f32', value: 1 - s.beta1 ** s.step },
      { name: 'c2', type: 'f32', value: 1 - s.beta2 ** s.step },
      { name: 'gradScale', type: 'f32', value: s.gradScale },
    ],
    bindings: [
      { name: 'p', access: 'read_write', type: 'f32' },
      { name: 'g', access: 'read', type: 'f32' },
      { name: 'm', access: 'read_write', type: 'f32' },
      { name: 'v', access: 'read_write', type: 'f32' },
      ...(guarded ? [{ name: 'flag', access: 'read' as const, type: 'f32' as const }] : []),
    ],
    source: () => ({
      main: `
  let k = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (k >= u.n${guarded ? ` || flag[${guardSlot}] != 0.0` : ''}) { return; }
  let i = u.offset + k;
  let gi = u.gradScale * g[i];
  let mi = u.beta1 * m[i] + (1.0 - u.beta1) * gi;
  let vi = u.beta2 * v[i] + (1.0 - u.beta2) * gi * gi;
  m[i] = mi; v[i] = vi;
  let pi = p[i];
  p[i] = pi - u.lr * ((mi / u.c1) / (sqrt(vi / u.c2) + u.eps) + u.wd * pi);`,
    }),
  };
}

/** Record one AdamW step over all tensors (skipped on the GPU while `guard` is set); returns the number of dispatches used. */
export function adamw(ctx: GpuContext, tensors: readonly AdamWTensor[], step: AdamWStep, guard?: AdamWGuard): number {
  const K = 'AdamW';
  if (!Number.isInteger(step.step) || step.step < 1) fail('usage', `${K}: step=${step.step} must be a 1-based integer`);
  const s: Required<AdamWStep> = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradScale: 1, ...step };
  const runs: { t: AdamWTensor; offset: number; size: number; wd: number }[] = [];
  for (const t of tensors) {
    const offset = t.offset ?? 0;
    if (!Number.isInteger(t.size) || t.size < 0) fail('usage', `${K}: tensor size ${t.size} must be a non-negative integer`);
    if (new Set([t.param, t.m, t.v]).size !== 3 || [t.param, t.m, t.v].includes(t.grad))
      fail('usage', `${K}: param, grad, m and v must be four different buffers`);
    for (const [name, b] of [['param', t.param], ['grad', t.grad], ['m', t.m], ['v', t.v]] as const) checkBuffer(K, name, b, offset + t.size);
    const wd = t.noDecay ? 0 : s.weightDecay;
    const last = runs[runs.length - 1];
    const same = last && last.t.param === t.param && last.t.grad === t.grad && last.t.m === t.m && last.t.v === t.v && last.wd === wd;
    if (same && last.offset + last.size === offset) last.size += t.size;
    else if (t.size > 0) runs.push({ t, offset, size: t.size, wd });
  }
  if (guard) {
    checkBuffer(K, 'guard flag', guard.flag, guard.slot + 1);
    if (tensors.some((t) => [t.param, t.m, t.v].includes(guard.flag))) fail('usage', `${K}: the guard flag must not be a parameter or moment buffer`);
  }
  for (const r of runs) ctx.run(adamwProgram(r.size, r.offset, r.wd, s, guard?.slot), guard ? [r.t.param, r.t.grad, r.t.m, r.t.v, guard.flag] : [r.t.param, r.t.grad, r.t.m, r.t.v]);
  return runs.length;
}
