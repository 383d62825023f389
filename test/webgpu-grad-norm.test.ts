/**
 * Global-norm clipping on the GPU (src/webgpu/grad-norm.ts) against a float64 reference: the norm
 * over several tensors (one with more elements than MAX_GROUPS workgroups cover in one stride), the
 * clip factor, and the gradients scaled in place; with and without subgroups where the device
 * offers them (the shared workgroup reduction, src/webgpu/reduce.ts, has both paths).
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { adamw, stepScalars, writeStepScalars } from '../src/webgpu/adamw.js';
import { clipByGlobalNorm, globalNorm, partialCount, STATS, STATS_FLOATS } from '../src/webgpu/grad-norm.js';
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

describe.skipIf(!env.ctx)('the clip factor applied by AdamW (the trainer\'s path)', () => {
  // globalNorm + AdamW reading stats[clip] must equal clipByGlobalNorm's in-place scale + AdamW,
  // bit for bit (same products in the same order), with and without loss scaling.
  for (const lossScale of [undefined, 1024])
    it(`equals clip in place then AdamW (loss scale ${lossScale ?? 'none'})`, async () => {
      const ctx = new GpuContext(env.ctx!.device);
      const r = rng(5);
      const S = lossScale ?? 1;
      const grads = SIZES.map((n) => Float32Array.from(randn(r, n), (x) => x * S));
      const params = SIZES.map((n) => randn(r, n));
      const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + (x / S) ** 2, 0), 0));
      const step = { step: 3, lr: 1e-2, weightDecay: 0.1, gradScale: 1 / S };
      const run = async (fused: boolean) => {
        const t = grads.map((g, i) => ({ grad: ctx.upload(`g${i}`, g), param: ctx.upload(`p${i}`, params[i]), m: ctx.upload(`m${i}`, Float32Array.from(params[i], (x) => x / 3)), v: ctx.upload(`v${i}`, Float32Array.from(params[i], (x) => x * x)), size: g.length }));
        const partials = ctx.buffer('partials', SIZES.reduce((s, n) => s + partialCount(n), 0) * 4);
        const stats = ctx.buffer('stats', STATS_FLOATS * 4);
        writeStepScalars(ctx.device.queue, stats, step);
        const norms = t.map((x) => ({ grad: x.grad, size: x.size }));
        if (fused) {
          globalNorm(ctx, norms, partials, stats, norm / 3, lossScale !== undefined);
          adamw(ctx, t, step, { buffer: stats, clip: true, guard: lossScale !== undefined });
        } else {
          clipByGlobalNorm(ctx, norms, partials, stats, norm / 3, lossScale !== undefined);
          adamw(ctx, t, step, { buffer: stats, guard: lossScale !== undefined });
        }
        const st = await ctx.readF32(stats, STATS_FLOATS);
        return { st, p: await Promise.all(t.map((x) => ctx.readF32(x.param, x.size))), v: await Promise.all(t.map((x) => ctx.readF32(x.v, x.size))) };
      };
      const inPlace = await run(false), fused = await run(true);
      expect(Math.abs(fused.st[STATS.norm] - norm) / norm).toBeLessThan(1e-5);
      expect(fused.st[STATS.clip]).toBeCloseTo(1 / 3, 5);
      expect(Array.from(fused.st.slice(STATS.lr))).toEqual(Array.from(stepScalars(step)));
      expect(fused.st[STATS.overflow]).toBe(0);
      // The update moved every parameter, and both paths agree exactly.
      expect(relL2(fused.p[2], Float64Array.from(params[2]))).toBeGreaterThan(1e-4);
      fused.p.forEach((p, i) => expect(Array.from(p)).toEqual(Array.from(inPlace.p[i])));
      fused.v.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(inPlace.v[i])));
    });
});
