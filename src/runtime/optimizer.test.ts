import { describe, expect, it } from 'vitest';
import { adamwStep, globalNorm, learningRate, type ParamState } from './optimizer.js';
import { rng } from '../data/batches.js';

/** float64 AdamW reference, written from the paper's update rule. */
function reference(p0: number[], gs: number[][], lr: number, wd: number, clipTo: number) {
  const p = p0.slice(), m = p.map(() => 0), v = p.map(() => 0);
  gs.forEach((g0, k) => {
    const t = k + 1;
    const n = Math.sqrt(g0.reduce((s, x) => s + x * x, 0));
    const c = clipTo && n > clipTo ? clipTo / (n + 1e-6) : 1;
    for (let i = 0; i < p.length; i++) {
      const g = g0[i] * c;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      const mh = m[i] / (1 - 0.9 ** t), vh = v[i] / (1 - 0.999 ** t);
      p[i] -= lr * (mh / (Math.sqrt(vh) + 1e-8) + wd * p[i]);
    }
  });
  return p;
}

describe('AdamW', () => {
  it('matches a float64 reference over 20 steps with weight decay and clipping', () => {
    const r = rng(3);
    const n = 64;
    const p0 = Array.from({ length: n }, () => r() * 2 - 1);
    const gs = Array.from({ length: 20 }, () => Array.from({ length: n }, () => (r() * 2 - 1) * 3));
    const state: ParamState = { value: Float32Array.from(p0), m: new Float32Array(n), v: new Float32Array(n) };
    const params = new Map([['w', state]]);
    gs.forEach((g, k) => adamwStep(params, new Map([['w', Float32Array.from(g)]]), k + 1, 1e-2, { lr: 1e-2, weightDecay: 0.1, maxGradNorm: 1 }));
    const ref = reference(p0, gs, 1e-2, 0.1, 1);
    for (let i = 0; i < n; i++) expect(state.value[i]).toBeCloseTo(ref[i], 5);
    // the first step of Adam moves every weight by about lr (sign of the gradient)
    const one: ParamState = { value: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) };
    adamwStep(new Map([['w', one]]), new Map([['w', Float32Array.from(gs[0])]]), 1, 1e-2, { lr: 1e-2 });
    for (let i = 0; i < n; i++) expect(Math.abs(one.value[i])).toBeCloseTo(1e-2, 6);
  });

  it('skips decay for noDecay parameters and reports the pre-clip norm', () => {
    const s: ParamState = { value: Float32Array.from([1, 1]), m: new Float32Array(2), v: new Float32Array(2), noDecay: true };
    const norm = adamwStep(new Map([['n', s]]), new Map([['n', Float32Array.from([0, 0])]]), 1, 0.1, { lr: 0.1, weightDecay: 0.5 });
    expect(Array.from(s.value)).toEqual([1, 1]);
    expect(norm).toBe(0);
    expect(globalNorm([Float32Array.from([3]), Float32Array.from([4])])).toBe(5);
  });

  it('warm-up then cosine schedule', () => {
    const s = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minRatio: 0.1 };
    expect(learningRate(1, s)).toBeCloseTo(1e-4, 12);
    expect(learningRate(10, s)).toBeCloseTo(1e-3, 12);
    expect(learningRate(60, s)).toBeCloseTo(0.55e-3, 12);
    expect(learningRate(110, s)).toBeCloseTo(1e-4, 12);
    expect(learningRate(500, s)).toBeCloseTo(1e-4, 12);
  });

  it('linear and constant schedules after the same warm-up', () => {
    const s = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minRatio: 0.1 };
    expect(learningRate(5, { ...s, kind: 'linear' })).toBeCloseTo(0.5e-3, 12);
    expect(learningRate(60, { ...s, kind: 'linear' })).toBeCloseTo(0.55e-3, 12);
    expect(learningRate(110, { ...s, kind: 'linear' })).toBeCloseTo(1e-4, 12);
    expect(learningRate(35, { ...s, kind: 'linear' })).toBeCloseTo(1e-3 - 0.9e-3 * 0.25, 12);
    expect(learningRate(5, { ...s, kind: 'constant' })).toBeCloseTo(0.5e-3, 12);
    for (const t of [10, 60, 110, 500]) expect(learningRate(t, { ...s, kind: 'constant' })).toBe(1e-3);
  });
});
