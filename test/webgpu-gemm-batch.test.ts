/**
 * Batched GEMMs (MatmulArgs.batch, src/webgpu/matmul.ts) on gemm_f32 and gemmMixed's rounded path
 * against float64 on a real dawn.node device (SwiftShader on CPU-only machines): plain strides,
 * the two-level GQA index, a shared operand (stride 0), all four layouts, accumulation and alpha,
 * sizes that cut every tile, views at offsets; the argument checks; unbatched programs untouched.
 */
import { describe, expect, it } from 'vitest';
import { gemmF32, gemmF32Program } from '../src/webgpu/gemm.js';
import { gemmPlan } from '../src/webgpu/gemm-plan.js';
import { gemmF16Program, gemmF16VecProgram } from '../src/webgpu/gemm-f16.js';
import { gemmMixed } from '../src/webgpu/gemm-mixed.js';
import { matmul, type MatmulArgs } from '../src/webgpu/matmul.js';
import { generateWgsl } from '../src/webgpu/program.js';
import { gpuEnv, gqaBatch as gqa, relL2, runBatch } from './webgpu-helpers.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('batched GEMM (gemm_f32) vs float64', () => {
  const ctx = env.ctx!;
  const cases: [string, Omit<MatmulArgs, 'a' | 'b' | 'c'>][] = [
    ['NT, GQA two-level B, 64 tile', { m: 37, n: 45, k: 19, transB: true, alpha: 0.5, batch: gqa(37, 45, 19) }],
    ['NN, GQA two-level B, 128 tile forced', { m: 130, n: 70, k: 33, tile: { tm: 8, tn: 8 }, batch: gqa(130, 70, 33) }],
    ['TN accumulating, padded strides', { m: 20, n: 36, k: 70, transA: true, accumulate: true, alpha: 0.75, batch: { count: 3, strideA: 70 * 20 + 9, strideB: 70 * 36 + 1, strideC: 20 * 36 + 4 } }],
    ['TT, shared A (stride 0), two-level A', { m: 17, n: 19, k: 23, transA: true, transB: true, batch: { count: 6, strideA: 0, strideB: 23 * 19, strideC: 17 * 19, groupA: { inner: 3, div: 1, strideOuter: 17 * 23 } } }],
    ['NN, one entry', { m: 9, n: 5, k: 300, batch: { count: 1, strideA: 0, strideB: 0, strideC: 0 } }],
  ];
  for (const [name, args] of cases)
    it(`${name}: ${args.batch!.count} x ${args.m}x${args.n}x${args.k}`, async () => {
      const { got, want } = await runBatch(ctx, gemmF32, args);
      const e = relL2(got, want);
      console.info(`batched gemm_f32 ${name}: ${e.toExponential(2)}`);
      expect(e).toBeLessThan(1e-5);
    });

  it("triangle 'lowerA' / 'upperA': K stops after each tile's last row / starts at its first (NN and TN, both tiles)", async () => {
    for (const triangle of ['lowerA', 'upperA'] as const)
      for (const [ta, bm] of [[false, 64], [true, 128]] as const) {
        const m = 150, k = 150;
        const batch = { ...gqa(m, 40, k), triangle };
        // op(A) zero on the triangle's side of the diagonal inside the tile's K range, NaN outside it: read only if K ran there.
        const inTile = (i: number, p: number) => (triangle === 'lowerA' ? p < (Math.floor(i / bm) + 1) * bm : p >= Math.floor(i / bm) * bm);
        const edit = (A: Float32Array, off: number) => {
          for (let z = 0; z < batch.count; z++)
            for (let i = 0; i < m; i++)
              for (let p = 0; p < k; p++)
                if (triangle === 'lowerA' ? p > i : p < i) A[off + z * m * k + (ta ? p * m + i : i * k + p)] = inTile(i, p) ? 0 : NaN;
        };
        const args = { m, n: 40, k, transA: ta, tile: bm === 64 ? { tm: 4, tn: 4 } : { tm: 8, tn: 8 }, batch };
        const { got, want } = await runBatch(ctx, gemmF32, args, false, edit);
        expect(relL2(got, want), `${triangle} ${ta}`).toBeLessThan(1e-5);
        // Without the triangle the NaNs are read.
        const full = await runBatch(ctx, gemmF32, { ...args, batch: { ...batch, triangle: undefined } }, false, edit);
        expect(full.got.some(Number.isNaN)).toBe(true);
      }
  });

  it("triangle 'lowerC': the lower triangle as the product, tiles wholly above the diagonal untouched", async () => {
    for (const tile of [{ tm: 4, tn: 4 }, { tm: 8, tn: 8 }]) {
      const args = { m: 200, n: 200, k: 24, transB: true, alpha: 0.5, tile, batch: { ...gqa(200, 200, 24), triangle: 'lowerC' as const } };
      const { got, want, C0, offC } = await runBatch(ctx, gemmF32, args);
      expect(relL2(got, want)).toBeLessThan(1e-5);
      // Entry 3's C[0, 199] lies in a tile above the diagonal at either tile size: never written.
      const at = offC + 3 * 200 * 200 + 199;
      expect(got[at]).toBe(C0[at]);
    }
  });

  it('the entries are distinct: a wrong GQA index (div 4 instead of 2: every head on kv head 0) fails the reference', async () => {
    const args = { m: 16, n: 16, k: 8, transB: true, batch: gqa(16, 16, 8) };
    const { got, want } = await runBatch(ctx, (c, a) => gemmF32(c, { ...a, batch: { ...a.batch!, groupB: { ...a.batch!.groupB!, div: 4 } } }), args);
    expect(relL2(got, want)).toBeGreaterThan(0.1);
  });

  it("gemmMixed without tensor cores (round_f16): batched, GQA, vs float64 of f16-rounded operands", async () => {
    const args = { m: 70, n: 64, k: 40, transB: true, batch: gqa(70, 64, 40) };
    const { got, want, unrounded } = await runBatch(ctx, gemmMixed, args, true);
    expect(relL2(got, want)).toBeLessThan(1e-6);
    expect(relL2(got, unrounded)).toBeGreaterThan(1e-5);
  });

  it('rejects bad batches with errors naming the problem', () => {
    const buf = ctx.buffer('b', 4096);
    const base = { m: 4, n: 4, k: 4, a: { buffer: buf, ld: 4 }, b: { buffer: buf, ld: 4 }, c: { buffer: ctx.buffer('c', 4096), ld: 4 } };
    const batch = { count: 4, strideA: 16, strideB: 16, strideC: 16 };
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, strideC: 15 } })).toThrow(/gemm_f32: batch strideC=15 makes the entries of C overlap \(each spans 16 elements\)/);
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, count: 0 } })).toThrow(/gemm_f32: batch count=0 must be an integer >= 1/);
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, count: 70000 } })).toThrow(/batch count 70000 is above 65535/);
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, strideB: -1 } })).toThrow(/batch strideB=-1 must be an integer >= 0/);
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, groupA: { inner: 2, div: 0, strideOuter: 0 } } })).toThrow(/batch groupA.div=0 must be an integer >= 1/);
    expect(() => gemmF32(ctx, { ...base, splitK: 2, batch })).toThrow(/gemm_f32: splitK=2 with a batch/);
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, triangle: 'upper' as 'lowerC' } })).toThrow(/gemm_f32: batch triangle='upper' is not 'lowerC', 'lowerA' or 'upperA'/);
    // The last entry of A (offset 3·400) runs past the 1024-element buffer.
    expect(() => gemmF32(ctx, { ...base, batch: { ...batch, strideA: 400 } })).toThrow(/gemm_f32: A needs 1216 elements but its buffer holds 1024/);
    expect(() => matmul(ctx, { ...base, batch })).toThrow(/matmul: no batch here/);
  });
});

describe('batched GEMM programs', () => {
  const view = { buffer: {} as GPUBuffer, ld: 64 };
  const args: MatmulArgs = { m: 1000, n: 1000, k: 72, a: view, b: view, c: view, transB: true };
  const batched = { ...args, batch: gqa(1000, 1000, 72) };
  const cfg = { config: { M: 16, N: 8, K: 16 } };

  it('dispatch z = batch entries, own cache key, operand offsets from the batch uniforms; unbatched programs have none of it', () => {
    for (const [plain, bat] of [
      [gemmF32Program(args, 1), gemmF32Program(batched, 1)],
      [gemmF32Program(args, 1, true), gemmF32Program(batched, 1, true)],
      [gemmF16Program(args, 1, cfg), gemmF16Program(batched, 1, cfg)],
      [gemmF16VecProgram(args, 1, cfg), gemmF16VecProgram(batched, 1, cfg)],
    ]) {
      expect(bat.dispatch[2]).toBe(8);
      expect(bat.cacheKey).toBe(`${plain.cacheKey};batch`);
      const w = generateWgsl(bat), p = generateWgsl(plain);
      expect(w).toContain('let offA = u.offA + (wid.z / u.bInA) * u.bOutA + ((wid.z % u.bInA) / u.bDivA) * u.bStrA;');
      // Batched, the uniform offsets are read once, in the entry's offsets.
      for (const x of ['A', 'B', 'C']) expect(w.split(`u.off${x}`).length - 1, x).toBe(1);
      expect(p).toContain('u.offA');
      expect(p).not.toMatch(/bIn|bStr|batch/);
      expect(w).not.toMatch(/1000|72000/);
    }
  });

  it("triangle: its own cache key; 'lowerC' returns from tiles past the diagonal, 'lowerA' ends K at the tile's last row", () => {
    const lowerC = gemmF32Program({ ...args, batch: { ...batched.batch!, triangle: 'lowerC' } }, 1);
    const lowerA = gemmF16Program({ ...args, batch: { ...batched.batch!, triangle: 'lowerA' } }, 1, cfg);
    expect(lowerC.cacheKey).toBe(`${gemmF32Program(args, 1).cacheKey};batch;lowerC`);
    expect(generateWgsl(lowerC)).toContain('if (col0 > row0 + 127u) { return; }');
    expect(generateWgsl(lowerA)).toContain('let kEnd = min(u.K, row0 + 128u);');
    expect(generateWgsl(gemmF32Program(batched, 1))).not.toMatch(/return;|row0 \+ 128u\)/);
  });

  it('plans batched GEMMs unsplit, on the small tile where M or N is a head size', () => {
    expect(gemmPlan({ m: 512, n: 512, k: 64, batch: gqa(512, 512, 64) })).toEqual({ small: true, split: 1 }); // 16 tiles x 8 = 128 < 132
    expect(gemmPlan({ m: 512, n: 512, k: 64, batch: { count: 112, strideA: 0, strideB: 0, strideC: 0 } })).toEqual({ small: false, split: 1 });
    expect(gemmPlan({ m: 512, n: 64, k: 3584, batch: { count: 16, strideA: 0, strideB: 0, strideC: 0 } })).toEqual({ small: true, split: 1 });
  });
});
