import { describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/webgpu/context.js';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { rmsNormGradRef, rmsNormRef } from './reference.js';
import { rmsNormBackward, rmsNormForward } from './webgpu/rms-norm.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('RMSNorm WGSL kernels vs float64 reference (dawn.node)', () => {
  const base = env.ctx!;
  // Reductions with subgroups (when the adapter has them) and with the shared-memory fallback.
  const variants = base.subgroups ? [base, new GpuContext(base.device, { log: base.log, subgroups: false })] : [base];
  // rows × d: d below/above the workgroup size and not a multiple of it; rows above the bwd group cap.
  for (const [seed, rows, d, eps] of [[1, 7, 896, 1e-6], [2, 600, 40, 1e-5], [3, 3, 1000, 1e-6]] as const)
    for (const ctx of variants)
      it(`rows=${rows} d=${d} subgroups=${ctx.subgroups}`, async () => {
        const r = rng(seed);
        const x = randn(r, rows * d, 3), w = randn(r, d), dy = randn(r, rows * d);
        const xb = ctx.upload('x', x), wb = ctx.upload('w', w);
        const { y, rstd } = rmsNormForward(ctx, { x: xb, weight: wb, rows, d, eps });
        // accumulate: dWeight starts at 1 and must become 1 + Σ.
        const dWeight = ctx.upload('dw', new Float32Array(d).fill(1));
        const g = rmsNormBackward(ctx, { x: xb, weight: wb, rstd, dy: ctx.upload('dy', dy), rows, d, dWeight, accumulate: true });
        const ref = rmsNormRef(x, w, d, eps);
        const gref = rmsNormGradRef(x, w, dy, d, eps);
        const eY = relL2(await ctx.readF32(y, rows * d), ref.y);
        const eR = relL2(await ctx.readF32(rstd, rows), ref.rstd);
        const eX = relL2(await ctx.readF32(g.dx, rows * d), gref.dx);
        const eW = relL2(await ctx.readF32(g.dWeight, d), gref.dWeight.map((v) => v + 1));
        // RMSNormGrad(dy, x, weight): rstd recomputed from x inside the kernel.
        const h = rmsNormBackward(ctx, { x: xb, weight: wb, eps, dy: ctx.upload('dy', dy), rows, d });
        const eX2 = relL2(await ctx.readF32(h.dx, rows * d), gref.dx);
        const eW2 = relL2(await ctx.readF32(h.dWeight, d), gref.dWeight);
        expect(eX2).toBeLessThan(1e-4);
        expect(eW2).toBeLessThan(1e-4);
        console.info(`rmsnorm rows=${rows} d=${d} sg=${ctx.subgroups}: y ${eY.toExponential(2)} rstd ${eR.toExponential(2)} dx ${eX.toExponential(2)} dW ${eW.toExponential(2)}`);
        expect(eY).toBeLessThan(1e-5);
        expect(eR).toBeLessThan(1e-5);
        expect(eX).toBeLessThan(1e-4);
        expect(eW).toBeLessThan(1e-4);
      });

  it('needs eps when it recomputes rstd', () => {
    const x = base.buffer('x', 64 * 4);
    expect(() => rmsNormBackward(base, { x, weight: x, dy: x, rows: 8, d: 8 })).toThrow(/RMSNormGrad: without a saved rstd, eps must be given/);
  });

  it('rejects a rstd buffer that is too small', () => {
    const x = base.buffer('x', 64 * 4);
    expect(() => rmsNormBackward(base, { x, weight: x, rstd: base.buffer('r', 4), dy: x, rows: 8, d: 8 })).toThrow(/RMSNormGrad: buffer 'rstd' has 16 bytes, needs 32/);
  });
});
