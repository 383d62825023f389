/**
 * AdamW (decoupled weight decay, bias-corrected moments; Loshchilov & Hutter,
 * https://arxiv.org/abs/1711.05101), global-norm gradient clipping and a linear warm-up followed by
 * a cosine, linear or constant learning-rate schedule, on host Float32Arrays (the `cpu` backend).
 *
 *   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
 *   p ← p − lr·( m/(1−β1ᵗ) / (√(v/(1−β2ᵗ)) + ε) + wd·p )
 */

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Clip the global L2 norm of all gradients to this (0 = off). */
  maxGradNorm?: number;
}

export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of the peak (default 0.1; not used by 'constant'). */
  minRatio?: number;
  /** Decay after the warm-up (default 'cosine'). */
  kind?: ScheduleKind;
}

/** Learning-rate decay after the warm-up. */
export const SCHEDULES = ['cosine', 'linear', 'constant'] as const;
export type ScheduleKind = (typeof SCHEDULES)[number];

/** Learning rate at 1-based step `t`: linear warm-up, then cosine or linear decay to minRatio·lr, or constant. */
export function learningRate(t: number, s: ScheduleOptions): number {
  const min = (s.minRatio ?? 0.1) * s.lr;
  if (s.warmupSteps > 0 && t <= s.warmupSteps) return (s.lr * t) / s.warmupSteps;
  const kind = s.kind ?? 'cosine';
  if (kind === 'constant') return s.lr;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const p = Math.min(1, (t - s.warmupSteps) / span);
  if (kind === 'linear') return s.lr - (s.lr - min) * p;
  return min + 0.5 * (s.lr - min) * (1 + Math.cos(Math.PI * p));
}

/** Global L2 norm over all gradients (accumulated in float64). */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** Multiply every gradient by `k` in place (the loss scale's 1/S: exact for a power of two). */
export function scaleGradients(grads: Iterable<Float32Array>, k: number): void {
  if (k === 1) return;
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= k;
}

export interface ParamState {
  value: Float32Array;
  m: Float32Array;
  v: Float32Array;
  /** No weight decay for this parameter (norm weights, biases). */
  noDecay?: boolean;
}

/**
 * One AdamW step over all parameters at 1-based step `t` with learning rate `lr`.
 * Returns the gradient norm before clipping (`norm`, when the caller has it already).
 */
export function adamwStep(params: Map<string, ParamState>, grads: Map<string, Float32Array>, t: number, lr: number, o: AdamWOptions, norm = globalNorm(grads.values())): number {
  const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0;
  const clip = o.maxGradNorm && norm > o.maxGradNorm ? o.maxGradNorm / (norm + 1e-6) : 1;
  const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (!g) continue;
    const { value, m, v } = p;
    const decay = p.noDecay ? 0 : wd;
    for (let i = 0; i < value.length; i++) {
      const gi = g[i] * clip;
      const mi = (m[i] = b1 * m[i] + (1 - b1) * gi);
      const vi = (v[i] = b2 * v[i] + (1 - b2) * gi * gi);
      value[i] -= lr * (mi / c1 / (Math.sqrt(vi / c2) + eps) + decay * value[i]);
    }
  }
  return norm;
}
