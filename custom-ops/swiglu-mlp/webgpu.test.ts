import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { swigluMlpGradRef, swigluMlpProjectionsRef, swigluMlpRef } from './reference.js';
import { swigluMlpBackward, swigluMlpForward, swigluMlpForwardKeep } from './webgpu/mlp.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('SwiGLUMLP WGSL kernels (gemmF32) vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  // M, H, I, weight scale: sizes off the 64/128 tiles; one past a 128 tile on every axis; a
  // long-K weight gradient (M = 1100 rows: split-K in two slices); saturated gates (scale 2 over H = 16).
  for (const [seed, m, h, i, scale] of [[1, 37, 24, 72, 0.3], [2, 130, 136, 160, 0.1], [3, 1100, 16, 40, 0.2], [4, 9, 16, 8, 2]] as const)
    it(`M=${m} H=${h} I=${i} weight scale ${scale}`, async () => {
      const r = rng(seed);
      const x = randn(r, m * h), wg = randn(r, i * h, scale), wu = randn(r, i * h, scale), wd = randn(r, h * i, scale), dy = randn(r, m * h);
      const bufs = { x: ctx.upload('x', x), wGate: ctx.upload('wg', wg), wUp: ctx.upload('wu', wu), wDown: ctx.upload('wd', wd) };
      const y = swigluMlpForward(ctx, { ...bufs, m, h, i });
      const g = swigluMlpBackward(ctx, { ...bufs, dy: ctx.upload('dy', dy), m, h, i });
      const ref = swigluMlpGradRef(x, wg, wu, wd, dy, { m, h, i });
      const err = {
        y: relL2(await ctx.readF32(y, m * h), swigluMlpRef(x, wg, wu, wd, { m, h, i })),
        dx: relL2(await ctx.readF32(g.dx!, m * h), ref.dx),
        dwGate: relL2(await ctx.readF32(g.dwGate!, i * h), ref.dwGate),
        dwUp: relL2(await ctx.readF32(g.dwUp!, i * h), ref.dwUp),
        dwDown: relL2(await ctx.readF32(g.dwDown!, h * i), ref.dwDown),
      };
      console.info(`swiglu-mlp M=${m} H=${h} I=${i}: ${Object.entries(err).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(' ')}`);
      for (const [k, e] of Object.entries(err)) expect(e, k).toBeLessThan(1e-5);
    });

  // The saving forms: forward outputs g and u; backward reads them, in their buffers or beside them.
  for (const [seed, m, h, i, overwrite] of [[6, 37, 24, 72, true], [7, 130, 136, 160, false]] as const)
    it(`kept g and u: M=${m} H=${h} I=${i}, backward ${overwrite ? 'in their buffers' : 'leaves them intact'}`, async () => {
      const r = rng(seed);
      const x = randn(r, m * h), wg = randn(r, i * h, 0.3), wu = randn(r, i * h, 0.3), wd = randn(r, h * i, 0.3), dy = randn(r, m * h);
      const bufs = { x: ctx.upload('x', x), wGate: ctx.upload('wg', wg), wUp: ctx.upload('wu', wu), wDown: ctx.upload('wd', wd) };
      const f = swigluMlpForwardKeep(ctx, { ...bufs, m, h, i });
      const proj = swigluMlpProjectionsRef(x, wg, wu, { m, h, i });
      const gotG = await ctx.readF32(f.g, m * i), gotU = await ctx.readF32(f.u, m * i);
      const b = swigluMlpBackward(ctx, { ...bufs, dy: ctx.upload('dy', dy), m, h, i, kept: { g: f.g, u: f.u, overwrite } });
      const ref = swigluMlpGradRef(x, wg, wu, wd, dy, { m, h, i });
      const err = {
        y: relL2(await ctx.readF32(f.y, m * h), swigluMlpRef(x, wg, wu, wd, { m, h, i })),
        g: relL2(gotG, proj.g),
        u: relL2(gotU, proj.u),
        dx: relL2(await ctx.readF32(b.dx!, m * h), ref.dx),
        dwGate: relL2(await ctx.readF32(b.dwGate!, i * h), ref.dwGate),
        dwUp: relL2(await ctx.readF32(b.dwUp!, i * h), ref.dwUp),
        dwDown: relL2(await ctx.readF32(b.dwDown!, h * i), ref.dwDown),
      };
      console.info(`swiglu-mlp keep M=${m} H=${h} I=${i}: ${Object.entries(err).map(([k, e]) => `${k} ${e.toExponential(2)}`).join(' ')}`);
      for (const [k, e] of Object.entries(err)) expect(e, k).toBeLessThan(1e-5);
      // In place, g's buffer now holds dg; else it still holds g.
      const after = relL2(await ctx.readF32(f.g, m * i), proj.g);
      if (overwrite) expect(after).toBeGreaterThan(0.1);
      else expect(after).toBeLessThan(1e-5);
    });

  it('computes only the gradients asked for (frozen weights)', async () => {
    const [m, h, i] = [20, 8, 12];
    const r = rng(5);
    const x = randn(r, m * h), wg = randn(r, i * h, 0.5), wu = randn(r, i * h, 0.5), wd = randn(r, h * i, 0.5), dy = randn(r, m * h);
    const g = swigluMlpBackward(ctx, {
      x: ctx.upload('x', x), wGate: ctx.upload('wg', wg), wUp: ctx.upload('wu', wu), wDown: ctx.upload('wd', wd), dy: ctx.upload('dy', dy), m, h, i,
      want: { dx: true, dwGate: false, dwUp: true, dwDown: false },
    });
    expect([!!g.dx, !!g.dwGate, !!g.dwUp, !!g.dwDown]).toEqual([true, false, true, false]);
    const ref = swigluMlpGradRef(x, wg, wu, wd, dy, { m, h, i });
    expect(relL2(await ctx.readF32(g.dx!, m * h), ref.dx)).toBeLessThan(1e-5);
    expect(relL2(await ctx.readF32(g.dwUp!, i * h), ref.dwUp)).toBeLessThan(1e-5);
  });

  it('rejects a too-small weight buffer with a readable error', () => {
    const b = (n: number) => ctx.buffer('b', n * 4);
    expect(() => swigluMlpForward(ctx, { x: b(64), wGate: b(32), wUp: b(128), wDown: b(128), m: 4, h: 16, i: 8 }))
      .toThrow(/SwiGLUMLP: buffer 'w_gate' has 128 bytes, needs 512/);
  });
});
