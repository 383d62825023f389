/**
 * gemm_f32's F32Variant options for the 128×128 kernel's limits (src/webgpu/gemm.ts: fragPrefetch,
 * compact, vec4, wide) against float64 on a real dawn.node device (SwiftShader on CPU-only
 * machines): alone and combined, all four layouts, sizes that cut every tile, K split on and off,
 * accumulating, batched; where gemmF32 drops vec4 or the wide tile; and the generated programs of
 * the existing variants unchanged by them (hashes of their WGSL, cache keys, dispatch, uniforms).
 * gemm_f16's tile variants (F16Variant, for the H200 sweep: this machine has no subgroup matrices,
 * so only their programs are checked here: grid, workgroup, staging, declarations, refusals).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { F32_DEFAULT, f32Variant, gemmF32, gemmF32Program, type F32Variant } from '../src/webgpu/gemm.js';
import { gemmPlan } from '../src/webgpu/gemm-plan.js';
import { gemmF16Program, gemmF16VecProgram } from '../src/webgpu/gemm-f16.js';
import { F16_2X4, F16_DEFAULT } from '../src/webgpu/gemm-f16-plan.js';
import type { MatmulArgs } from '../src/webgpu/matmul.js';
import { generateWgsl, type Program } from '../src/webgpu/program.js';
import { gemmError, gpuEnv, gqaBatch as gqa, relL2, runBatch } from './webgpu-helpers.js';

const env = await gpuEnv();
const large = { tm: 8, tn: 8 }, small = { tm: 4, tn: 4 };

describe.skipIf(!env.ctx)('gemm_f32 variants vs float64', () => {
  const ctx = env.ctx!;
  // Every side a multiple of 4 (vec4 applies) and none of the tile; A and C at offset 4.
  const cases: [string, number, number, number, Partial<MatmulArgs>][] = [
    ['NT', 300, 260, 40, { transB: true }],
    ['NN', 260, 300, 52, {}],
    ['TN accumulating', 44, 132, 76, { transA: true, accumulate: true }],
    ['TT', 140, 136, 44, { transA: true, transB: true }],
    // The slices run NT's kernel (a slice never accumulates: the sum does).
    ['NT accumulating, split-K 3', 132, 260, 700, { transB: true, accumulate: true, splitK: 3 }],
  ];
  const variants: [string, F32Variant, { tm: number; tn: number }][] = [
    ['fragPrefetch', { ...F32_DEFAULT, fragPrefetch: true }, large],
    ['compact', { ...F32_DEFAULT, compact: true }, large],
    ['vec4', { ...F32_DEFAULT, vec4: true }, large],
    ['wide n', { ...F32_DEFAULT, wide: 'n' }, large],
    ['wide m', { ...F32_DEFAULT, wide: 'm' }, large],
    ['all four, wide n', { ...F32_DEFAULT, fragPrefetch: true, compact: true, vec4: true, wide: 'n' }, large],
    // The other K walks: staged without registers, double-buffered, the 64×64 tile.
    ['vec4 + compact, no prefetch', { bk: 16, vec4: true, compact: true }, large],
    ['bk8 double + vec4 + fragPrefetch, wide m', { bk: 8, double: true, vec4: true, fragPrefetch: true, wide: 'm' }, large],
    ['64x64: fragPrefetch + compact + vec4', { bk: 16, prefetch: true, fragPrefetch: true, compact: true, vec4: true }, small],
  ];
  /** gemmF32 with `v`, checking that it runs as given (no flag dropped). */
  const run = (v: F32Variant) => (c: typeof ctx, a: MatmulArgs) => {
    expect(f32Variant(a, v, gemmPlan(a, v.wide))).toEqual(v);
    gemmF32(c, a, v);
  };
  for (const [vname, v, tile] of variants) {
    for (const [name, m, n, k, opt] of cases)
      it(`${vname}, ${name}: ${m}x${n}x${k}`, async () => {
        expect(await gemmError(ctx, run(v), m, n, k, { ...opt, tile }, 4)).toBeLessThan(1e-5);
      });
    it(`${vname}, batched NT, GQA two-level B`, async () => {
      const args = { m: 132, n: 68, k: 36, transB: true, alpha: 0.5, tile, batch: gqa(132, 68, 36) };
      const { got, want } = await runBatch(ctx, run(v), args, false, undefined, { a: 4, b: 8, c: 7 });
      expect(relL2(got, want)).toBeLessThan(1e-5);
    });
  }

  it('vec4 falls back to scalar loads on unaligned views and sides, still correct', async () => {
    const v = { ...F32_DEFAULT, vec4: true, compact: true };
    let ran: F32Variant | undefined;
    const e = await gemmError(ctx, (c, a) => { ran = f32Variant(a, v, gemmPlan(a)); gemmF32(c, a, v); }, 300, 260, 40, { transB: true, tile: large }); // A, C at offset 7
    expect(e).toBeLessThan(1e-5);
    expect(ran).toEqual({ ...v, vec4: false });
    expect(await gemmError(ctx, (c, a) => gemmF32(c, a, v), 130, 66, 43, { transA: true, tile: large }, 4)).toBeLessThan(1e-5); // M, K odd
  });
});

describe('gemm_f32 variant choice', () => {
  const view = { buffer: {} as GPUBuffer, ld: 896 };
  const args: MatmulArgs = { m: 4096, n: 896, k: 896, a: view, b: view, c: view, transB: true };

  it("takes the wide tile only where its grid fills the GPU, and splits K by its tiles", () => {
    expect(gemmPlan({ m: 4096, n: 896, k: 896 }, 'n')).toEqual({ small: false, split: 1 }); // 32x4 = 128 wide tiles: kept 128x128
    expect(gemmPlan({ m: 4096, n: 4864, k: 896 }, 'n')).toEqual({ small: false, split: 1, wide: 'n' }); // 608
    expect(gemmPlan({ m: 896, n: 4864, k: 4096 }, 'n')).toEqual({ small: false, split: 8, wide: 'n' }); // 133 tiles: 8 slices (128x128: 4)
    expect(gemmPlan({ m: 4864, n: 896, k: 4096 }, 'm')).toEqual({ small: false, split: 8, wide: 'm' });
    expect(gemmPlan({ m: 128, n: 896, k: 4096 }, 'n')).toEqual({ small: true, split: 8 }); // the 64x64 tile has no wide form
    expect(gemmPlan({ m: 40, n: 40, k: 8, tile: large }, 'm')).toEqual({ small: false, split: 1, wide: 'm' }); // forced
    expect(f32Variant(args, { ...F32_DEFAULT, wide: 'n', vec4: true }, gemmPlan(args, 'n'))).toEqual({ ...F32_DEFAULT, wide: undefined, vec4: true });
  });

  it('drops vec4 with roundF16 and on the 64x64 tile at K step 8 (half a vec4 per invocation)', () => {
    expect(f32Variant(args, { vec4: true, roundF16: true }, { small: false }).vec4).toBe(false);
    expect(f32Variant(args, { bk: 8, vec4: true }, { small: true }).vec4).toBe(false);
    expect(f32Variant(args, { bk: 8, vec4: true }, { small: false }).vec4).toBe(true);
    expect(f32Variant({ ...args, b: { ...view, offset: 2 } }, { vec4: true }, { small: false }).vec4).toBe(false);
  });

  it('refuses what the program cannot run, naming it', () => {
    expect(() => gemmF32Program(args, 1, true, { wide: 'n' })).toThrow(/gemm_f32: the wide tile \(F32Variant.wide 'n'\) has no 64x64 form/);
    expect(() => gemmF32Program({ ...args, k: 894 }, 1, false, { vec4: true })).toThrow(/gemm_f32: vec4 loads need contiguous extents, leading dimensions, offsets and batch strides that are multiples of 4/);
    expect(() => gemmF32Program(args, 1, true, { bk: 8, vec4: true })).toThrow(/gemm_f32: vec4 loads need a whole vec4 per invocation/);
    expect(() => gemmF32Program(args, 1, false, { bk: 32, wide: 'n' })).toThrow(/gemm_f32: K step 32 needs 50176 bytes of workgroup memory for a 128x256 tile/);
  });

  it('keys and declares each variant: vec4 bindings, the wide pitch, the compact ids', () => {
    const p = gemmF32Program(args, 1, false, { ...F32_DEFAULT, fragPrefetch: true, compact: true, vec4: true, wide: 'n' });
    expect(p.cacheKey).toBe('NT;acc=0;tile=128;bk=16;pf=1;db=0;swap=0;unroll=1;frag=1;compact=1;v4=1;wide=n');
    expect(p.dispatch).toEqual([4, 32, 1]);
    const w = generateWgsl(p);
    expect(w).toContain('var<storage, read> A: array<vec4<f32>>;');
    expect(w).toContain('var<workgroup> Bs: array<vec4<f32>, 1040>; // [k][n], pitch 260 floats');
    expect(w).toContain('let tx = (lidx / 32u) % 2u * 8u + lidx % 8u; let ty = lidx / 64u * 4u + (lidx / 8u) % 4u;');
    expect(w).toContain('c7_15 = fma(a1_15[3], b3_15[3], c7_15);');
    expect(w).not.toContain('896');
  });
});

/**
 * The programs of the variants that existed before these options, hashed (sha256 of name, cache key,
 * workgroup size, dispatch, uniforms, bindings and WGSL over the four layouts × plain, accumulating,
 * split 3, batched and the three triangles), as generated before the options were added: the new
 * options, off, change nothing. Update a hash only when a change to that program is meant.
 */
describe('existing gemm programs unchanged', () => {
  const view = { buffer: {} as GPUBuffer, ld: 1000 };
  const forms = (each: (a: MatmulArgs, split: number) => Program[]) => {
    const out: string[] = [];
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const args: MatmulArgs = { m: 1000, n: 900, k: 700, a: view, b: view, c: view, transA, transB };
        const batch = gqa(1000, 900, 700);
        for (const [a, split] of [[args, 1], [{ ...args, accumulate: true }, 1], [{ ...args, accumulate: true }, 3], [{ ...args, batch }, 1],
          ...(['lowerC', 'lowerA', 'upperA'] as const).map((triangle) => [{ ...args, batch: { ...batch, triangle } }, 1])] as [MatmulArgs, number][])
          for (const p of each(a, split)) out.push(JSON.stringify([p.name, p.cacheKey, p.workgroupSize, p.dispatch, p.uniforms, p.bindings]), generateWgsl(p));
      }
    return createHash('sha256').update(out.join('\n')).digest('hex').slice(0, 16);
  };
  const f32: [string, boolean, F32Variant | undefined, string][] = [
    // The default became compact in session 12 (H200 sweep: +3-6% on the MLP's GEMMs); the program before it is kept below.
    ['default', false, undefined, '0be727a7831694fa'],
    ['unrolled, not compact (the default before session 12)', false, { bk: 16, prefetch: true, unroll: true }, '2e10b078603db881'],
    ['small default', true, undefined, '3ff98df2549644a4'],
    ['loop', false, { bk: 16, prefetch: true, unroll: false }, '444beefb44408e6f'],
    ['bk8 prefetch', false, { bk: 8, prefetch: true }, '89f71ab83a3a3100'],
    ['bk16 plain', false, { bk: 16 }, '008d2b662cd82dc3'],
    ['bk8 double unrolled', false, { bk: 8, double: true, unroll: true }, 'fe782e6c4ab8d13d'],
    ['swap', false, { bk: 16, prefetch: true, unroll: true, swap: true }, 'e831a4215ff6a7a2'],
    ['roundF16', false, { bk: 16, prefetch: true, unroll: true, roundF16: true }, '213e5c76aa9a1225'],
    ['small roundF16', true, { bk: 16, prefetch: true, roundF16: true }, '5c69f62e155a7bbc'],
    ['small bk8 double', true, { bk: 8, double: true }, '5fb7b1d30bafbd26'],
  ];
  for (const [name, isSmall, v, hash] of f32)
    it(`gemm_f32 ${name}`, () => {
      expect(forms((a, s) => [v ? gemmF32Program(a, s, isSmall, v) : gemmF32Program(a, s, isSmall)])).toBe(hash);
      // The new options spelled out as off: the same programs (the default has compact on: its
      // spelled-out-off form is the entry before it became the default).
      const base = v ?? (isSmall ? { bk: 16, prefetch: true } : F32_DEFAULT);
      const off = { ...base, fragPrefetch: false, compact: false, vec4: false, wide: undefined };
      expect(forms((a, s) => [gemmF32Program(a, s, isSmall, off)])).toBe(base.compact ? '2e10b078603db881' : hash);
    });

  it('gemm_f16 (shares the staging helpers)', () => {
    const cfg = { config: { M: 16, N: 16, K: 16 } };
    const out: string[] = [];
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const args: MatmulArgs = { m: 1000, n: 900, k: 700, a: view, b: view, c: view, transA, transB, accumulate: true };
        for (const a of [args, { ...args, batch: gqa(1000, 900, 700) }])
          for (const p of [gemmF16Program(a, 1, cfg), gemmF16Program(a, 1, cfg, true), gemmF16VecProgram(a, 1, cfg)]) out.push(p.cacheKey, generateWgsl(p));
      }
    // Session 14 changed the vec4 kernel's default tile (F16_DEFAULT: 2×2 subgroups of 64×64; it was F16_2X4).
    expect(createHash('sha256').update(out.join('\n')).digest('hex').slice(0, 16)).toBe('f2864161b2b693a9');
  });
});

describe('gemm_f16 tile variants (programs)', () => {
  const view = { buffer: {} as GPUBuffer, ld: 1000 };
  const cfg = { M: 16, N: 16, K: 16 };
  const args: MatmulArgs = { m: 4096, n: 896, k: 896, a: view, b: view, c: view, transB: true };

  it('the default spelled out is the default program (only the cache key names the tile)', () => {
    const base = gemmF16VecProgram(args, 1, { config: cfg });
    const spelled = gemmF16VecProgram(args, 1, { config: cfg, variant: F16_DEFAULT });
    expect(generateWgsl(spelled)).toBe(generateWgsl(base));
    expect(spelled.cacheKey).toBe(`${base.cacheKey};tile=2x2x64x64x32`);
  });

  it('a 128x256 tile of 2x4 subgroups of 64x64: 16 result matrices a subgroup, B staged 4 vec4s an invocation (K step 16: 32 passes 32 KiB)', () => {
    const p = gemmF16VecProgram(args, 1, { config: cfg, variant: { sgRows: 2, sgCols: 4, sgm: 64, sgn: 64, bk: 16 } });
    expect(p.workgroupSize).toEqual([256]);
    expect(p.dispatch).toEqual([4, 32, 1]);
    const w = generateWgsl(p);
    expect(w.match(/var acc\d+_\d+ = /g)).toHaveLength(16);
    expect(w).toContain('var acc3_3 = ');
    expect(w).toContain('var pA1 = vec4<f32>(0.0); var pB1 = vec4<f32>(0.0); var pB2 = vec4<f32>(0.0); var pB3 = vec4<f32>(0.0);');
    expect(w).not.toContain('var pA2');
    expect(w).toContain('var<workgroup> Bs: array<f16, 6144>;'); // B as stored [n][k]: 256 rows of pitch 16 + 8
    expect(w).toContain('let sr = sg / 4u; let sc = sg % 4u;');
    expect(() => gemmF16VecProgram(args, 1, { config: cfg, variant: { sgRows: 2, sgCols: 4, sgm: 64, sgn: 64, bk: 32 } })).toThrow(/needs 38912 bytes of workgroup memory/);
  });

  it('4 subgroups of 64x64 (a 128-invocation workgroup): staging spread over 128, the epilogue slot per subgroup', () => {
    const p = gemmF16VecProgram({ ...args, m: 1000, transB: false }, 1, { config: cfg, variant: { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 32 } });
    expect(p.workgroupSize).toEqual([128]);
    const w = generateWgsl(p);
    expect(w).toContain('var<workgroup> Cs: array<f32, 1024>;');
    expect(w).toContain('(lidx + 896u)'); // the 8th vec4 of A: 128 x 32 / 4 / 128 = 8 an invocation
    expect(w).toContain('let sr = sg / 2u; let sc = sg % 2u;');
  });

  it('refuses a block the matrix config does not tile, and a tile that does not stage evenly', () => {
    expect(() => gemmF16VecProgram(args, 1, { config: cfg, variant: { ...F16_2X4, sgm: 40 } })).toThrow(/subgroup matrix 16x16x16 does not tile a 40x32x32 block/);
    expect(() => gemmF16VecProgram(args, 1, { config: cfg, variant: { sgRows: 1, sgCols: 4, sgm: 16, sgn: 16, bk: 16 } })).toThrow(/a 16x64x16 tile does not stage evenly over 128 invocations/);
  });
});
