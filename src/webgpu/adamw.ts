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
 * same weight decay merge into one dispatch.
 *
 * The step's scalars (lr, c1, c2, gradScale) are read from a small storage buffer, the trainer's
 * stats buffer (./grad-norm.ts STATS), written by the host before the step's commands: every
 * uniform of an AdamW dispatch is then the same at every step, so neither a pipeline nor a bind
 * group nor the recorded step (src/webgpu/step-tape.ts) changes between steps. Without a stats
 * buffer, adamw() writes the scalars into one of its own.
 *
 * Clip (`clip`): g ← stats[clip]·g as it is read, the global-norm clip factor ./grad-norm.ts
 * finalized into the same buffer, instead of a pass that scales every gradient in place first
 * (same product, same order: (g·clip)·gradScale).
 *
 * Guard (mixed precision's overflow skip, without a host round trip): with `guard`, every
 * invocation first reads the overflow slot and returns without touching p, m or v when it is set
 * (a gradient of this step was not finite).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { dispatch1d, type Program } from './program.js';
import { checkBuffer } from './validate.js';
import { STATS, STATS_FLOATS } from './grad-norm.js';

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

/** Where the step's scalars, clip factor and overflow flag are (./grad-norm.ts STATS layout), and which of them to use. */
export interface AdamWStats {
  /** The stats buffer: slots lr, c1, c2 and gradScale written for this step (writeStepScalars). */
  buffer: GPUBuffer;
  /** Skip the update while the overflow slot is set (mixed precision). */
  guard?: boolean;
  /** Multiply every gradient by the clip slot (finalizeNorm's factor). */
  clip?: boolean;
}

const WG = 256;

function adamwProgram(size: number, offset: number, wd: number, s: Required<AdamWStep>, guard: boolean, clip: boolean): Program {
  return {
    name: 'adamw',
    cacheKey: `f32${guard ? '-guard' : ''}${clip ? '-clip' : ''}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(size / WG)),
    uniforms: [
      { name: 'n', type: 'u32', value: size },
      { name: 'offset', type: 'u32', value: offset },
      { name: 'beta1', type: 'f32', value: s.beta1 },
      { name: 'beta2', type: 'f32', value: s.beta2 },
      { name: 'eps', type: 'f32', value: s.eps },
      { name: 'wd', type: 'f32', value: wd },
    ],
    bindings: [
      { name: 'p', access: 'read_write', type: 'f32' },
      { name: 'g', access: 'read', type: 'f32' },
      { name: 'm', access: 'read_write', type: 'f32' },
      { name: 'v', access: 'read_write', type: 'f32' },
      { name: 'st', access: 'read', type: 'f32' },
    ],
    source: () => ({
      main: `
  let k = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (k >= u.n${guard ? ` || st[${STATS.overflow}] != 0.0` : ''}) { return; }
  let i = u.offset + k;
  let lr = st[${STATS.lr}]; let c1 = st[${STATS.c1}]; let c2 = st[${STATS.c2}];
  let gi = st[${STATS.gradScale}] * ${clip ? `(g[i] * st[${STATS.clip}])` : 'g[i]'};
  let mi = u.beta1 * m[i] + (1.0 - u.beta1) * gi;
  let vi = u.beta2 * v[i] + (1.0 - u.beta2) * gi * gi;
  m[i] = mi; v[i] = vi;
  let pi = p[i];
  p[i] = pi - lr * ((mi / c1) / (sqrt(vi / c2) + u.eps) + u.wd * pi);`,
    }),
  };
}

const withDefaults = (step: AdamWStep): Required<AdamWStep> => ({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradScale: 1, ...step });

/** The step's scalars as the stats slots lr, c1, c2, gradScale hold them (STATS.lr onward). */
export function stepScalars(step: AdamWStep): Float32Array<ArrayBuffer> {
  const s = withDefaults(step);
  return new Float32Array([s.lr, 1 - s.beta1 ** s.step, 1 - s.beta2 ** s.step, s.gradScale]);
}

/** Queue the write of the step's scalars into `stats` (before the step's commands are submitted). */
export function writeStepScalars(queue: GPUQueue, stats: GPUBuffer, step: AdamWStep): void {
  queue.writeBuffer(stats, STATS.lr * 4, stepScalars(step));
}

/**
 * Record one AdamW step over all tensors; returns the number of dispatches used. `stats`: the
 * buffer holding this step's scalars (written with writeStepScalars; the step's numbers in `step`
 * are then only checked), and whether to clip and guard; absent, the scalars of `step` go into a
 * buffer of adamw's own.
 */
export function adamw(ctx: GpuContext, tensors: readonly AdamWTensor[], step: AdamWStep, stats?: AdamWStats): number {
  const K = 'AdamW';
  if (!Number.isInteger(step.step) || step.step < 1) fail('usage', `${K}: step=${step.step} must be a 1-based integer`);
  const s = withDefaults(step);
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
  let st = stats?.buffer;
  if (st) {
    checkBuffer(K, 'stats', st, STATS_FLOATS);
    if (tensors.some((t) => [t.param, t.m, t.v].includes(st!))) fail('usage', `${K}: the stats buffer must not be a parameter or moment buffer`);
  } else if (runs.length) {
    const own = new Float32Array(STATS_FLOATS);
    own.set(stepScalars(step), STATS.lr);
    st = ctx.write('adamw scalars', own);
  }
  for (const r of runs) ctx.run(adamwProgram(r.size, r.offset, r.wd, s, !!stats?.guard, !!stats?.clip), [r.t.param, r.t.grad, r.t.m, r.t.v, st!]);
  if (!stats?.buffer && st) ctx.release(st);
  return runs.length;
}
