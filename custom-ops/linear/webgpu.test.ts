import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { linearGradRef, linearRef } from './reference.js';
import { linearBackward, linearForward } from './webgpu/linear.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('Linear WGSL kernels (gemmF32) vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  // seed, M, K, N, trans_b, bias: sizes off the 64/128 tiles (a k/v-like narrow N), one past a 128
  // tile on every axis, a long-K weight gradient (M = 1100 rows: split-K), both layouts.
  for (const [seed, m, k, n, transB, bias] of [[1, 37, 24, 72, true, true], [2, 130, 136, 160, false, true], [3, 1100, 16, 40, true, false], [4, 9, 48, 8, false, false]] as const)
    it(`M=${m} K=${k} N=${n} trans_b=${+transB} bias=${bias}`, async () => {
      const r = rng(seed);
      const x = randn(r, m * k), w = randn(r, n * k, 0.3), b = randn(r, n), dy = randn(r, m * n);
      const s = { m, k, n, transB };
      const bufs = { x: ctx.upload('x', x), w: ctx.upload('w', w) };
      const y = linearForward(ctx, { ...s, ...bufs, bias: bias ? ctx.upload('b', b) : undefined });
      const g = linearBackward(ctx, { ...s, ...bufs, dy: ctx.upload('dy', dy), want: { dx: true, dw: true, db: true } });
      const ref = linearGradRef(x, w, dy, s);
      const err = {
        y: relL2(await ctx.readF32(y, m * n), linearRef(x, w, bias ? b : undefined, s)),
        dx: relL2(await ctx.readF32(g.dx!, m * k), ref.dx),
        dw: relL2(await ctx.readF32(g.dw!, n * k), ref.dw),
        db: relL2(await ctx.readF32(g.db!, n), ref.db),
      };
      console.info(`linear M=${m} K=${k} N=${n} trans_b=${+transB}: ${Object.entries(err).map(([q, e]) => `${q} ${e.toExponential(2)}`).join(' ')}`);
      for (const [q, e] of Object.entries(err)) expect(e, q).toBeLessThan(1e-5);
    });

  it('computes only the gradients asked for (a frozen weight: dx alone; db only when asked)', async () => {
    const [m, k, n] = [20, 8, 12];
    const r = rng(5);
    const x = randn(r, m * k), w = randn(r, n * k, 0.5), dy = randn(r, m * n);
    const args = { m, k, n, transB: true, x: ctx.upload('x', x), w: ctx.upload('w', w), dy: ctx.upload('dy', dy) };
    const frozen = linearBackward(ctx, { ...args, want: { dx: true, dw: false } });
    expect([!!frozen.dx, !!frozen.dw, !!frozen.db]).toEqual([true, false, false]);
    expect(relL2(await ctx.readF32(frozen.dx!, m * k), linearGradRef(x, w, dy, args).dx)).toBeLessThan(1e-5);
    const weightOnly = linearBackward(ctx, { ...args, want: { dx: false, dw: true } });
    expect([!!weightOnly.dx, !!weightOnly.dw, !!weightOnly.db]).toEqual([false, true, false]);
  });

  it("precision 'f16' rounds the GEMM operands to half (gemmMixed): matches the rounded float64 reference, not the fp32 one", async () => {
    const [m, k, n] = [16, 32, 24];
    const r = rng(6);
    const x = randn(r, m * k), w = randn(r, n * k, 0.5), dy = randn(r, m * n);
    const s = { m, k, n, transB: true };
    const args = { ...s, precision: 'f16' as const, x: ctx.upload('x', x), w: ctx.upload('w', w) };
    const y = await ctx.readF32(linearForward(ctx, args), m * n);
    expect(relL2(y, linearRef(x, w, undefined, { ...s, precision: 'f16' }))).toBeLessThan(1e-6);
    expect(relL2(y, linearRef(x, w, undefined, s))).toBeGreaterThan(1e-4);
    const g = linearBackward(ctx, { ...args, dy: ctx.upload('dy', dy) });
    const ref = linearGradRef(x, w, dy, { ...s, precision: 'f16' });
    expect(relL2(await ctx.readF32(g.dx!, m * k), ref.dx)).toBeLessThan(1e-6);
    expect(relL2(await ctx.readF32(g.dw!, n * k), ref.dw)).toBeLessThan(1e-6);
  });

  it('rejects a too-small buffer or a bad size with a readable error', () => {
    const b = (e: number) => ctx.buffer('b', e * 4);
    expect(() => linearForward(ctx, { x: b(64), w: b(32), m: 4, k: 16, n: 8, transB: true })).toThrow(/Linear: buffer 'w' has 128 bytes, needs 512/);
    expect(() => linearForward(ctx, { x: b(64), w: b(128), bias: b(4), m: 4, k: 16, n: 8, transB: true })).toThrow(/Linear: buffer 'bias' has 16 bytes, needs 32/);
    expect(() => linearBackward(ctx, { x: b(64), w: b(128), dy: b(8), m: 4, k: 16, n: 8, transB: false })).toThrow(/LinearGrad: buffer 'dy' has 32 bytes, needs 128/);
    expect(() => linearForward(ctx, { x: b(64), w: b(128), m: 0, k: 16, n: 8, transB: true })).toThrow(/Linear: m=0 must be a positive integer/);
  });
});
