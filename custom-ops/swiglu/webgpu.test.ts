import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { swigluGradRef, swigluRef } from './reference.js';
import { swigluBackward, swigluForward } from './webgpu/swiglu.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('SwiGLU WGSL kernels vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  // Shapes: a Qwen2-0.5B-like row, an odd count, and a large-magnitude gate (sigmoid saturation).
  for (const [seed, n, scale] of [[1, 3 * 4864, 1], [2, 1001, 4], [3, 257, 40]] as const)
    it(`n=${n} gate scale ${scale}`, async () => {
      const r = rng(seed);
      const g = randn(r, n, scale), u = randn(r, n), dy = randn(r, n);
      const gate = ctx.upload('gate', g), up = ctx.upload('up', u), dyb = ctx.upload('dy', dy);
      const y = swigluForward(ctx, { gate, up, n });
      const { dGate, dUp } = swigluBackward(ctx, { gate, up, dy: dyb, n });
      const eY = relL2(await ctx.readF32(y, n), swigluRef(g, u));
      const ref = swigluGradRef(g, u, dy);
      const eG = relL2(await ctx.readF32(dGate, n), ref.dGate);
      const eU = relL2(await ctx.readF32(dUp, n), ref.dUp);
      console.info(`swiglu n=${n} scale=${scale}: y ${eY.toExponential(2)} dGate ${eG.toExponential(2)} dUp ${eU.toExponential(2)}`);
      expect(eY).toBeLessThan(1e-5);
      expect(eG).toBeLessThan(1e-4);
      expect(eU).toBeLessThan(1e-4);
    });

  it('rejects a too-small buffer with a readable error', () => {
    const small = ctx.buffer('small', 16);
    expect(() => swigluForward(ctx, { gate: small, up: small, n: 100 })).toThrow(/SwiGLU: buffer 'gate' has 16 bytes, needs 400/);
  });
});
