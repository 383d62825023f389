/**
 * ReadbackPacer (src/webgpu/readback-pacer.ts) on a fake clock: no sleep until it has measured
 * `keep` waits (a warm-up step never sets it), then `fraction` of the shortest of the last `keep`,
 * each measured from the call, sleep included, to the readback's end; the readback's value passes
 * through, and an error from it propagates without recording a wait.
 */
import { describe, expect, it } from 'vitest';
import { ReadbackPacer, type PacerClock } from '../src/webgpu/readback-pacer.js';

function fakeClock(): PacerClock & { t: number; sleeps: number[] } {
  const c = {
    t: 0,
    sleeps: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => { c.sleeps.push(ms); c.t += ms; },
  };
  return c;
}

/** A readback the GPU finishes `gpuMs` after the call (the pacer's sleep counts toward it). */
const readback = (c: { t: number }, start: number, gpuMs: number, value = 1) => async () => {
  c.t = Math.max(c.t, start + gpuMs);
  return value;
};

describe('ReadbackPacer', () => {
  it('sleeps 0.75 of the shortest of the last 3 waits, only once it has 3, and passes the value through', async () => {
    const c = fakeClock();
    const p = new ReadbackPacer(0.75, 3, c);
    const gpu = [9000, 200, 180, 190, 100, 200, 200, 200];
    const naps: number[] = [];
    for (const [i, ms] of gpu.entries()) {
      naps.push(p.nap);
      expect(await p.around(readback(c, c.t, ms, i))).toBe(i);
    }
    // Waits: 9000 (warm-up), 200, 180, then each later wait is max(gpu, the sleep) since the sleep counts.
    expect(naps.slice(0, 3)).toEqual([0, 0, 0]);
    expect(naps[3]).toBeCloseTo(0.75 * 180);
    expect(naps[4]).toBeCloseTo(0.75 * 180);
    // The 100 ms step overshoots once (the sleep was 135 ms), then the shorter wait sets the sleep.
    expect(naps[5]).toBeCloseTo(0.75 * 135);
    expect(c.sleeps).toEqual(naps.filter((n) => n >= 1));
  });

  it('a failing readback propagates its error and records no wait', async () => {
    const c = fakeClock();
    const p = new ReadbackPacer(0.5, 1, c);
    await expect(p.around(async () => { throw new Error('device lost'); })).rejects.toThrow('device lost');
    expect(p.nap).toBe(0);
    await p.around(readback(c, c.t, 40));
    expect(p.nap).toBe(20);
  });
});
