import { describe, expect, it } from 'vitest';
import { OrtfuseError } from '../errors.js';
import { DEFAULT_GROWTH_INTERVAL, DEFAULT_LOSS_SCALE, LossScaler, MAX_LOSS_SCALE } from './loss-scale.js';

describe('LossScaler', () => {
  it('starts at 2^16, doubles after growthInterval finite steps in a row, halves on a non-finite norm and skips that step', () => {
    const s = new LossScaler();
    expect(s.scale).toBe(DEFAULT_LOSS_SCALE);
    expect(s.growthInterval).toBe(DEFAULT_GROWTH_INTERVAL);
    const g = new LossScaler({ initialScale: 8, growthInterval: 3 });
    expect([1, 2].map((t) => g.update(1.5, t))).toEqual([false, false]);
    expect(g.scale).toBe(8);
    expect(g.update(0.1, 3)).toBe(false);
    expect(g.scale).toBe(16);
    expect(g.goodSteps).toBe(0);
    expect(g.update(0.1, 4)).toBe(false);
    // An overflow resets the run of good steps.
    expect(g.update(Infinity, 5)).toBe(true);
    expect(g.scale).toBe(8);
    expect(g.goodSteps).toBe(0);
    expect(g.update(NaN, 6)).toBe(true);
    expect(g.scale).toBe(4);
    expect(g.inverse).toBe(0.25);
    expect([7, 8].map((t) => g.update(1, t))).toEqual([false, false]);
    expect(g.scale).toBe(4);
    expect(g.update(1, 9)).toBe(false);
    expect(g.scale).toBe(8);
  });

  it("fails 'diverged' naming the step when the scale would fall below 2^-14; growth stops at 2^127", () => {
    const s = new LossScaler({ initialScale: 2 ** -13 });
    expect(s.update(Infinity, 41)).toBe(true);
    expect(s.scale).toBe(2 ** -14);
    let err: unknown;
    try {
      s.update(NaN, 42);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OrtfuseError);
    expect((err as OrtfuseError).code).toBe('diverged');
    expect((err as Error).message).toMatch(/^step 42: .*not finite.*2\^-14/);
    const top = new LossScaler({ initialScale: MAX_LOSS_SCALE, growthInterval: 1 });
    top.update(1, 1);
    expect(top.scale).toBe(MAX_LOSS_SCALE);
  });

  it('round-trips its state and refuses bad options and states', () => {
    const s = new LossScaler({ initialScale: 1024, growthInterval: 5 });
    s.update(1, 1);
    s.update(1, 2);
    const r = new LossScaler();
    r.restore(s.state());
    expect(r.state()).toEqual({ scale: 1024, goodSteps: 2 });
    expect(() => r.restore({ scale: -1, goodSteps: 0 })).toThrow(/broken loss-scaler state/);
    expect(() => r.restore({ scale: 2, goodSteps: 0.5 })).toThrow(/broken loss-scaler state/);
    expect(() => new LossScaler({ initialScale: 0 })).toThrow(/initialLossScale must be a number between 2\^-14 and 2\^127/);
    expect(() => new LossScaler({ initialScale: Infinity })).toThrow(/initialLossScale/);
    expect(() => new LossScaler({ initialScale: 2 ** 128 })).toThrow(/initialLossScale/);
    expect(() => new LossScaler({ growthInterval: 0 })).toThrow(/growthInterval must be an integer/);
  });
});
