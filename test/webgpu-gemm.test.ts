/**
 * The step GEMMs of src/webgpu/gemm.ts against float64 on a real dawn.node device (SwiftShader on
 * CPU-only machines): the fp32 kernel in the three linear-layer forms, both tile sizes, edges that
 * cut every tile, views at offsets, split-K with accumulation. The f16 subgroup-matrix kernel needs
 * an adapter with tensor-core configs (SwiftShader has none): its correctness check runs in
 * bench/matmul-webgpu.ts on the GPU; here only what can be checked without one.
 */
import { describe, expect, it } from 'vitest';
import { gemmF32, gemmF32Program, type F32Variant } from '../src/webgpu/gemm.js';
import { gemmPlan } from '../src/webgpu/gemm-plan.js';
import { gemmF16, gemmF16Program, pickF16Config } from '../src/webgpu/gemm-f16.js';
import type { MatmulArgs } from '../src/webgpu/matmul.js';
import { generateWgsl } from '../src/webgpu/program.js';
import { GpuContext } from '../src/webgpu/context.js';
import { requestNodeDevice } from '../src/webgpu/dawn-node.js';
import { GpuTimer } from '../src/webgpu/timing.js';
import { gemmError, gemmRef, gpuEnv, randn, relL2, rng } from './webgpu-helpers.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('step GEMM, fp32 (gemm_f32) vs float64', () => {
  const ctx = env.ctx!;
  const cases: [string, number, number, number, Partial<MatmulArgs>][] = [
    ['NT forward, 128 tile with ragged edges', 300, 260, 40, { transB: true, tile: { tm: 8, tn: 8 } }],
    ['NT forward, 64 tile (auto for few tiles)', 150, 70, 40, { transB: true }],
    ['NN input gradient, 64 tile', 70, 33, 57, {}],
    ['TN weight gradient accumulating, 128 tile', 45, 130, 77, { transA: true, accumulate: true, tile: { tm: 8, tn: 8 } }],
    ['TN accumulating, forced split-K 3', 20, 36, 700, { transA: true, accumulate: true, splitK: 3 }],
    ['TT', 17, 19, 23, { transA: true, transB: true }],
  ];
  for (const [name, m, n, k, opt] of cases)
    it(`${name}: ${m}x${n}x${k}`, async () => {
      const e = await gemmError(ctx, gemmF32, m, n, k, opt);
      console.info(`gemm_f32 ${name} ${m}x${n}x${k}: ${e.toExponential(2)}`);
      expect(e).toBeLessThan(1e-5);
    });

  // The K-walk variants (register prefetch, double buffering, K steps 8 / 32) on the cases whose
  // K is not a multiple of the step and whose tiles are cut at every edge.
  const variants: F32Variant[] = [{ bk: 8, prefetch: true }, { bk: 16 }, { bk: 8, double: true, unroll: true }];
  for (const v of variants)
    for (const [name, m, n, k, opt] of cases.slice(0, 5))
      it(`variant ${JSON.stringify(v)}, ${name}: ${m}x${n}x${k}`, async () => {
        const e = await gemmError(ctx, (c, a) => gemmF32(c, a, v), m, n, k, opt);
        expect(e).toBeLessThan(1e-5);
      });

  it('refuses a K step whose tiles do not fit workgroup memory', () => {
    const b = ctx.buffer('b', 4096);
    expect(() => gemmF32(ctx, { m: 8, n: 8, k: 8, a: { buffer: b, ld: 8 }, b: { buffer: b, ld: 8 }, c: { buffer: b, ld: 8 }, tile: { tm: 8, tn: 8 } }, { bk: 16, double: true }))
      .toThrow(/gemm_f32: K step 16, double-buffered, needs 33792 bytes/);
  });

  it('rejects an operand that does not fit its buffer', () => {
    const b = ctx.buffer('b', 64);
    expect(() => gemmF32(ctx, { m: 4, n: 4, k: 4, a: { buffer: b, ld: 4, offset: 8 }, b: { buffer: b, ld: 4 }, c: { buffer: ctx.buffer('c', 64), ld: 4 } }))
      .toThrow(/gemm_f32: A needs 24 elements but its buffer holds 16/);
  });

  it('gemm_f16 names the missing feature on a device without subgroup matrices', () => {
    if (ctx.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName)) return;
    const b = ctx.buffer('b', 64);
    expect(() => gemmF16(ctx, { m: 2, n: 2, k: 2, a: { buffer: b, ld: 2 }, b: { buffer: b, ld: 2 }, c: { buffer: ctx.buffer('c', 64), ld: 2 } }, { config: { M: 16, N: 16, K: 16 } }))
      .toThrow(/chromium-experimental-subgroup-matrix/);
  });
});

describe('gemm_f32 tile and K split choice', () => {
  it('splits long-K products of few tiles, never short K or many tiles', () => {
    expect(gemmPlan({ m: 4864, n: 896, k: 4096 })).toEqual({ small: false, split: 4 }); // MLP weight gradient: 266 tiles
    expect(gemmPlan({ m: 4096, n: 896, k: 4864 })).toEqual({ small: false, split: 5 }); // down forward: 224 tiles
    expect(gemmPlan({ m: 4096, n: 896, k: 896 })).toEqual({ small: false, split: 1 }); // K too short to slice
    expect(gemmPlan({ m: 4096, n: 4864, k: 896 })).toEqual({ small: false, split: 1 }); // 1,216 tiles fill the GPU
    expect(gemmPlan({ m: 128, n: 896, k: 4096 })).toEqual({ small: true, split: 8 }); // k/v weight gradient: 28 small tiles, 512-long slices
    expect(gemmPlan({ m: 4864, n: 896, k: 4096, splitK: 2 })).toEqual({ small: false, split: 2 });
  });
});

describe.skipIf(!env.ctx)('GPU timestamps per span (GpuTimer)', () => {
  it('times labelled spans and leaves their results intact', async () => {
    const device = await requestNodeDevice({ features: ['timestamp-query'] });
    if (!device.features.has('timestamp-query')) return console.warn('adapter without timestamp-query: GpuTimer not checked');
    const ctx = new GpuContext(device);
    const timer = new GpuTimer(ctx);
    const r = rng(5), m = 64, n = 48, k = 32;
    const A = randn(r, m * k), B = randn(r, k * n);
    const a = ctx.upload('A', A), b = ctx.upload('B', B), c1 = ctx.buffer('C1', m * n * 4), c2 = ctx.buffer('C2', m * n * 4);
    const args = { m, n, k, a: { buffer: a, ld: k }, b: { buffer: b, ld: n } };
    timer.begin('one');
    gemmF32(ctx, { ...args, c: { buffer: c1, ld: n } });
    timer.begin('two');
    gemmF32(ctx, { ...args, c: { buffer: c2, ld: n } });
    gemmF32(ctx, { ...args, c: { buffer: c2, ld: n }, accumulate: true });
    timer.end();
    const ms = await timer.read();
    expect([...ms.keys()]).toEqual(['one', 'two']);
    for (const v of ms.values()) expect(Number.isFinite(v) && v >= 0).toBe(true);
    expect((await timer.read()).size).toBe(0);
    const want = gemmRef(m, n, k, A, B, false, false, 1);
    expect(relL2(await ctx.readF32(c1, m * n), want)).toBeLessThan(1e-5);
    expect(relL2(await ctx.readF32(c2, m * n), want.map((x) => 2 * x))).toBeLessThan(1e-5);
    timer.destroy();
  });
});

describe('step GEMM programs', () => {
  const view = { buffer: {} as GPUBuffer, ld: 896 };
  const args: MatmulArgs = { m: 4096, n: 896, k: 896, a: view, b: view, c: view, transB: true };

  it('picks an f16→f32 matrix config that tiles the blocks, the largest first', () => {
    const cfg = (componentType: string, resultComponentType: string, M: number, N: number, K: number) => ({ componentType, resultComponentType, M, N, K });
    expect(pickF16Config([cfg('f32', 'f32', 16, 16, 8), cfg('f16', 'f16', 16, 16, 16), cfg('f16', 'f32', 16, 8, 16), cfg('f16', 'f32', 16, 16, 16)])).toEqual({ M: 16, N: 16, K: 16 });
    expect(pickF16Config([cfg('f16', 'f16', 16, 16, 16), cfg('f16', 'f32', 64, 16, 16)])).toBeUndefined();
  });

  it('declares the f16 and subgroup-matrix extensions and keeps shapes out of the WGSL', () => {
    const w = generateWgsl(gemmF16Program(args, 1, { config: { M: 16, N: 8, K: 16 } }));
    expect(w).toMatch(/^enable f16;\nenable chromium_experimental_subgroup_matrix;/);
    expect(w).toContain('subgroup_matrix_left<f16, 16, 16>');
    expect(w).toContain('subgroup_matrix_right<f16, 8, 16>');
    expect(w).not.toContain('4096');
    expect(generateWgsl(gemmF16Program({ ...args, m: 2048 }, 1, { config: { M: 16, N: 8, K: 16 } }))).toBe(w);
    expect(generateWgsl(gemmF32Program(args, 1))).not.toContain('4096');
  });
});
