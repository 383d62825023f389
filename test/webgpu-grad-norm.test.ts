/**
 * Global-norm clipping on the GPU (src/webgpu/grad-norm.ts) against a float64 reference: the norm
 * over several tensors (one with more elements than MAX_GROUPS workgroups cover in one stride), the
 * clip factor, and the gradients scaled in place; with and without subgroups where the device
 * offers them (the shared workgroup reduction, src/webgpu/reduce.ts, has both paths).
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { clipByGlobalNorm, partialCount } from '../src/webgpu/grad-norm.js';
import { gpuEnv, randn, relL2, rng } from './webgpu-helpers.js';

const env = await gpuEnv();

const SIZES = [5, 1000, 70_000];

async function clip(ctx: GpuContext, grads: Float32Array[], maxNorm: number) {
  const tensors = grads.map((g, i) => ({ grad: ctx.upload(`g${i}`, g), size: g.length }));
  const partials = ctx.buffer('partials', grads.reduce((s, g) => s + partialCount(g.length), 0) * 4);
  const stats = ctx.upload('stats', new Float32Array([7, 0, 0, 0]));
  clipByGlobalNorm(ctx, tensors, partials, stats, maxNorm);
  const [loss, norm, scale] = await ctx.readF32(stats, 4);
  const out = await Promise.all(tensors.map((t) => ctx.readF32(t.grad, t.size)));
  return { loss, norm, scale, out };
}

describe.skipIf(!env.ctx)('global-norm clipping on dawn.node', () => {
  const devices = [false, ...(env.ctx?.subgroups ? [true] : [])];
  for (const subgroups of devices)
    it(`norm, clip factor and scaled gradients (subgroups ${subgroups})`, async () => {
      const ctx = new GpuContext(env.ctx!.device, { subgroups });
      const r = rng(11);
      const grads = SIZES.map((n) => randn(r, n));
      const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));

      const kept = await clip(ctx, grads, 0);
      expect(kept.loss).toBe(7); // slot 0 belongs to the trainer
      expect(Math.abs(kept.norm - norm) / norm).toBeLessThan(1e-5);
      expect(kept.scale).toBe(1);
      kept.out.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(grads[i])));

      const maxNorm = norm / 4;
      const clipped = await clip(ctx, grads, maxNorm);
      const want = maxNorm / (norm + 1e-6);
      expect(Math.abs(clipped.scale - want) / want).toBeLessThan(1e-5);
      clipped.out.forEach((g, i) => expect(relL2(g, Float64Array.from(grads[i], (x) => x * want))).toBeLessThan(1e-5));

      const loose = await clip(ctx, grads, norm * 2);
      expect(loose.scale).toBe(1);
    });
});
