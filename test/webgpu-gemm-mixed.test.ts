/**
 * gemmMixed (src/webgpu/gemm-mixed.ts), precision 'f16' GEMMs, on a real dawn.node device
 * (SwiftShader on CPU-only machines): without tensor-core options it is gemm_f32 with each staged
 * operand element through round_f16 — checked against float64 products of f16-rounded operands
 * (and shown further from the unrounded ones); the flag leaves the plain kernel's WGSL untouched.
 */
import { describe, expect, it } from 'vitest';
import { F32_DEFAULT, F32_SMALL_DEFAULT, gemmF32Program, type F32Variant } from '../src/webgpu/gemm.js';
import { gemmMixed } from '../src/webgpu/gemm-mixed.js';
import type { MatmulArgs } from '../src/webgpu/matmul.js';
import { generateWgsl } from '../src/webgpu/program.js';
import { roundToFloat16 } from '../src/onnx/half.js';
import { gemmRef, gpuEnv, randn, relL2, rng } from './webgpu-helpers.js';

const env = await gpuEnv();

describe('gemm_f32 roundF16 variant: WGSL', () => {
  const view = { buffer: undefined as unknown as GPUBuffer, ld: 64 };
  const args: MatmulArgs = { m: 300, n: 260, k: 64, a: view, b: view, c: view, transB: true };
  it('off: the plain kernel exactly (source and cache key); on: round_f16 on every staged element, its own cache key', () => {
    for (const [small, base] of [[false, F32_DEFAULT], [true, F32_SMALL_DEFAULT], [false, { bk: 8, double: true }]] as [boolean, F32Variant][]) {
      const plain = gemmF32Program(args, 1, small, base), off = gemmF32Program(args, 1, small, { ...base, roundF16: false });
      const on = gemmF32Program(args, 1, small, { ...base, roundF16: true });
      expect(generateWgsl(off)).toBe(generateWgsl(plain));
      expect(off.cacheKey).toBe(plain.cacheKey);
      expect(on.cacheKey).not.toBe(plain.cacheKey);
      const src = generateWgsl(on);
      expect(generateWgsl(plain)).not.toContain('round_f16');
      // Each staged element of A and B is read once, through round_f16.
      const reads = (s: string) => (s.match(/[AB]\[u\.off[AB]/g) ?? []).length;
      expect((src.match(/round_f16\([AB]\[/g) ?? []).length).toBe(reads(src));
      expect(reads(src)).toBeGreaterThan(0);
    }
  });
});

describe.skipIf(!env.ctx)('gemmMixed without tensor-core options (gemm_f32, round_f16) vs float64 of f16-rounded operands', () => {
  const ctx = env.ctx!;
  const cases: [string, number, number, number, Partial<MatmulArgs>][] = [
    ['NT, 128 tile, ragged edges', 300, 260, 40, { transB: true, tile: { tm: 8, tn: 8 } }],
    ['NN, 64 tile', 70, 33, 57, {}],
    ['TN accumulating, split-K 3', 20, 36, 700, { transA: true, accumulate: true, splitK: 3 }],
  ];
  for (const [name, m, n, k, opt] of cases)
    it(`${name}: ${m}x${n}x${k}`, async () => {
      expect(ctx.f16Matrix).toBeUndefined();
      const r = rng(m + n + k);
      const ta = opt.transA ?? false, tb = opt.transB ?? false;
      // Values far from half's grid, and some beyond its range (±inf) and below its normals (subnormals kept).
      const A = randn(r, m * k), B = randn(r, k * n), C0 = randn(r, m * n);
      A[0] = 1e-6; A[1] = 3e-8; B[2] = 2.5e-6;
      const c = ctx.upload('C', C0);
      gemmMixed(ctx, { m, n, k, a: { buffer: ctx.upload('A', A), ld: ta ? m : k }, b: { buffer: ctx.upload('B', B), ld: tb ? k : n }, c: { buffer: c, ld: n }, alpha: 0.75, ...opt });
      const got = await ctx.readF32(c, m * n);
      const acc = opt.accumulate ? C0 : undefined;
      const rounded = gemmRef(m, n, k, Float32Array.from(roundToFloat16(A)), Float32Array.from(roundToFloat16(B)), ta, tb, 0.75, acc);
      const e = relL2(got, rounded), e32 = relL2(got, gemmRef(m, n, k, A, B, ta, tb, 0.75, acc));
      console.info(`gemmMixed ${name}: vs rounded ${e.toExponential(2)}, vs unrounded ${e32.toExponential(2)}`);
      expect(e).toBeLessThan(1e-6);
      expect(e32).toBeGreaterThan(1e-5);
    });

  it('rounds exactly as IEEE half, nearest even: ties, overflow to ±inf, subnormals, carries into the exponent', async () => {
    // C = A·1 with K = 1: C holds round_f16(A) itself.
    const r = rng(11);
    const special = [65504, 65519.996, 65520, 70000, 2 ** -14, 2 ** -14 * (1 - 2 ** -12), 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -25, 1e-7, 3e-8, 1e-40,
      1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 - 2 ** -12, 2047.5, 0, 0.1, 1 / 3];
    const values = [...special, ...special.map((v) => -v), ...Array.from({ length: 4000 }, () => (r() - 0.5) * 2 ** (Math.floor(r() * 44) - 28))];
    const m = values.length;
    const c = ctx.buffer('C', m * 4);
    gemmMixed(ctx, { m, n: 1, k: 1, a: { buffer: ctx.upload('A', Float32Array.from(values)), ld: 1 }, b: { buffer: ctx.upload('B', Float32Array.of(1)), ld: 1 }, c: { buffer: c, ld: 1 } });
    const got = Array.from(await ctx.readF32(c, m));
    const want = Array.from(roundToFloat16(values));
    // (−0 comes back +0: the sum starts from +0.)
    const wrong = got.map((g, i) => [values[i], g, want[i]]).filter(([, g, w]) => g !== w);
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(want.slice(0, 4)).toEqual([65504, 65504, Infinity, Infinity]);
    expect(want[7]).toBe(0); // 2^-25 is a tie between 0 and 2^-24: even is 0
  });
});
