/**
 * SwiGLUMLP WGSL kernels under precision 'f16' on dawn.node (SwiftShader here: gemmMixed's
 * gemm_f32 + round_f16 path) against the float64 references with f16-rounded GEMM operands, and
 * further than the tolerance from the unrounded ones.
 */
import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { swigluMlpGradRef, swigluMlpProjectionsRef, swigluMlpRef } from './reference.js';
import { swigluMlpBackward, swigluMlpForward, swigluMlpForwardKeep } from './webgpu/mlp.js';

const env = await gpuEnv();
/**
 * Kernel vs the rounded reference; the unrounded one is further off than this (~5e-4). An fp32
 * activation near a half rounding boundary may round the other way than its float64 value (1.2e-5
 * on y at M = 1100).
 */
const TOL = 5e-5;

describe.skipIf(!env.ctx)("SwiGLUMLP WGSL kernels, precision 'f16', vs float64 with rounded operands (dawn.node)", () => {
  const ctx = env.ctx!;
  // M, H, I, weight scale, kept g and u: sizes off the tiles; one past a 128 tile; long-K weight gradients (split-K).
  for (const [seed, m, h, i, scale, kept] of [[1, 37, 24, 72, 0.3, false], [2, 130, 136, 160, 0.1, true], [3, 1100, 16, 40, 0.2, false]] as const)
    it(`M=${m} H=${h} I=${i}${kept ? ', kept g and u' : ''}`, async () => {
      const r = rng(seed);
      const s = { m, h, i };
      const x = randn(r, m * h), wg = randn(r, i * h, scale), wu = randn(r, i * h, scale), wd = randn(r, h * i, scale), dy = randn(r, m * h);
      const bufs = { x: ctx.upload('x', x), wGate: ctx.upload('wg', wg), wUp: ctx.upload('wu', wu), wDown: ctx.upload('wd', wd), precision: 'f16' as const };
      const got: Record<string, Float32Array> = {};
      if (kept) {
        const f = swigluMlpForwardKeep(ctx, { ...bufs, m, h, i });
        got.y = await ctx.readF32(f.y, m * h);
        got.g = await ctx.readF32(f.g, m * i);
        got.u = await ctx.readF32(f.u, m * i);
        const b = swigluMlpBackward(ctx, { ...bufs, dy: ctx.upload('dy', dy), m, h, i, kept: { g: f.g, u: f.u, overwrite: true } });
        Object.assign(got, { dx: await ctx.readF32(b.dx!, m * h), dwGate: await ctx.readF32(b.dwGate!, i * h), dwUp: await ctx.readF32(b.dwUp!, i * h), dwDown: await ctx.readF32(b.dwDown!, h * i) });
      } else {
        got.y = await ctx.readF32(swigluMlpForward(ctx, { ...bufs, m, h, i }), m * h);
        const b = swigluMlpBackward(ctx, { ...bufs, dy: ctx.upload('dy', dy), m, h, i });
        Object.assign(got, { dx: await ctx.readF32(b.dx!, m * h), dwGate: await ctx.readF32(b.dwGate!, i * h), dwUp: await ctx.readF32(b.dwUp!, i * h), dwDown: await ctx.readF32(b.dwDown!, h * i) });
      }
      const refs = (f16: boolean) => ({ y: swigluMlpRef(x, wg, wu, wd, s, { f16 }), ...swigluMlpProjectionsRef(x, wg, wu, s, { f16 }), ...swigluMlpGradRef(x, wg, wu, wd, dy, s, { f16 }) });
      const rounded = refs(true), plain = refs(false);
      const err = Object.fromEntries(Object.entries(got).map(([k, v]) => [k, [relL2(v, rounded[k as keyof typeof rounded]), relL2(v, plain[k as keyof typeof plain])]]));
      console.info(`swiglu-mlp f16 M=${m} H=${h} I=${i}: ${Object.entries(err).map(([k, [e, e32]]) => `${k} ${e.toExponential(2)} (unrounded ${e32.toExponential(2)})`).join(' ')}`);
      for (const [k, [e, e32]] of Object.entries(err)) {
        expect(e, k).toBeLessThan(TOL);
        expect(e32, `${k} vs unrounded`).toBeGreaterThan(TOL);
      }
    });
});
