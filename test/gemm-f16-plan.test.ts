/**
 * gemm_f16's plan (src/webgpu/gemm-f16-plan.ts f16Plan): which kernel runs each of the step's GEMM
 * shapes under precision 'f16', and in how many K slices. A pure function: no device needed (the
 * kernels themselves are checked on the tensor cores by webgpu-gemm-mixed-matrix.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { gemmF16VecProgram } from '../src/webgpu/gemm-f16.js';
import { F16_2X4, F16_DEFAULT, F16_DOUBLE, F16_SMALL, f16Plan, f16Rule, type F16Options } from '../src/webgpu/gemm-f16-plan.js';
import type { MatmulArgs } from '../src/webgpu/matmul.js';

const buf = {} as GPUBuffer;
const opts: F16Options = { config: { M: 16, N: 16, K: 16 } };

/** A GEMM of the step in form NT (Y = X·Wᵀ), NN (dX = dY·W) or TN (dW = dYᵀ·X), contiguous operands. */
function gemm(form: 'NT' | 'NN' | 'TN', m: number, n: number, k: number, extra: Partial<MatmulArgs> = {}): MatmulArgs {
  const transA = form === 'TN', transB = form === 'NT';
  return { m, n, k, transA, transB, a: { buffer: buf, ld: transA ? m : k }, b: { buffer: buf, ld: transB ? k : n }, c: { buffer: buf, ld: n }, ...extra };
}

describe('f16Plan', () => {
  it('keeps the MLP GEMMs on the vec4 kernel with the K split they had', () => {
    expect(f16Plan(gemm('NT', 4096, 4864, 896), opts)).toEqual({ kernel: 'vec', small: false, split: 1 });
    expect(f16Plan(gemm('NT', 4096, 896, 4864), opts)).toEqual({ kernel: 'vec', small: false, split: 5 });
    expect(f16Plan(gemm('TN', 4864, 896, 4096), opts)).toEqual({ kernel: 'vec', small: false, split: 4 });
    for (const f of [gemm('NT', 4096, 4864, 896), gemm('NT', 4096, 896, 4864), gemm('TN', 4864, 896, 4096)])
      expect(f16Plan(f, opts)).toEqual(f16Plan(f, { ...opts, plan: 'legacy' }));
  });

  it('puts the lm_head input gradient (1,024 × 896 × 151,936 a chunk) on the vec4 kernel in 19 K slices', () => {
    expect(f16Plan(gemm('NN', 1024, 896, 151936), opts)).toEqual({ kernel: 'vec', small: false, split: 19 });
    // Before: fewer than 132 large tiles sent it to the scalar-staged 64×64 kernel.
    expect(f16Plan(gemm('NN', 1024, 896, 151936), { ...opts, plan: 'legacy' })).toMatchObject({ kernel: 'scalar', small: true });
  });

  it('splits short K only where the tiles alone leave SMs idle: the q/o weight gradients, 8×256 q/o, not 8×512 q/o', () => {
    // 224 tiles fill the GPU: K = 896 is not cut below 512 (cut in 3 it ran 49 TFLOP/s, whole 91; H200, session 14).
    expect(f16Plan(gemm('NT', 4096, 896, 896), opts)).toEqual({ kernel: 'vec', small: false, split: 1 });
    expect(f16Plan(gemm('NN', 4096, 896, 896), opts)).toEqual({ kernel: 'vec', small: false, split: 1 });
    expect(f16Plan(gemm('NT', 2048, 4864, 896), opts)).toEqual({ kernel: 'vec', small: false, split: 1 });
    expect(f16Plan(gemm('TN', 896, 896, 4096), opts)).toEqual({ kernel: 'vec', small: false, split: 16 });
    expect(f16Plan(gemm('NT', 2048, 896, 896), opts)).toEqual({ kernel: 'vec', small: false, split: 3 });
  });

  it('leaves to the scalar kernel what the vec4 grid cannot fill, and what it cannot read', () => {
    // k/v forward: 32 large tiles, K = 896 → 96 workgroups < 132.
    expect(f16Plan(gemm('NT', 4096, 128, 896), opts)).toMatchObject({ kernel: 'scalar', small: true });
    expect(f16Plan(gemm('TN', 128, 896, 4096), opts)).toMatchObject({ kernel: 'scalar', small: true });
    // f16 operands in memory, a K not a multiple of 4, or a forced scalar kernel.
    expect(f16Plan(gemm('NN', 1024, 896, 151936), { ...opts, halfOperands: true }).kernel).toBe('scalar');
    expect(f16Plan(gemm('NT', 4096, 4864, 894), opts).kernel).toBe('scalar');
    expect(f16Plan(gemm('NT', 4096, 4864, 896), { ...opts, scalar: true }).kernel).toBe('scalar');
  });

  it("'vec64': the vec4 kernel's 64×64 tile where the scalar kernel would run, batched products included", () => {
    const v64 = { ...opts, plan: 'vec64' as const };
    expect(f16Plan(gemm('NT', 4096, 128, 896), v64)).toEqual({ kernel: 'vec', small: true, split: 3, variant: F16_SMALL });
    expect(f16Plan(gemm('NT', 4096, 4864, 896), v64)).toEqual(f16Plan(gemm('NT', 4096, 4864, 896), opts));
    // Attention's P·V per head (N = 64: the 64×64 tile), batched: never split.
    const batch = { count: 112, strideA: 512 * 512, strideB: 512 * 64, strideC: 512 * 64 };
    const pv = gemm('NN', 512, 64, 512, { batch });
    expect(f16Plan(pv, opts)).toMatchObject({ kernel: 'scalar', small: true, split: 1 });
    expect(f16Plan(pv, v64)).toEqual({ kernel: 'vec', small: true, split: 1, variant: F16_SMALL });
    expect(f16Plan(pv, { ...v64, halfOperands: true }).kernel).toBe('scalar');
  });

  it("'staged' and 'direct' plan what the experimental kernels do not take as 'fill'", () => {
    for (const plan of ['staged', 'direct'] as const) {
      expect(f16Rule({ plan })).toBe(plan);
      expect(f16Plan(gemm('NT', 4096, 128, 896), { ...opts, plan })).toEqual(f16Plan(gemm('NT', 4096, 128, 896), opts));
    }
    expect(f16Rule({})).toBe('fill');
  });

  it("'double': the default tile double-buffered wherever the vec4 kernel runs, the same grid and split", () => {
    const dbl = { ...opts, plan: 'double' as const };
    expect(f16Plan(gemm('NN', 1024, 896, 151936), dbl)).toEqual({ kernel: 'vec', small: false, split: 19, variant: { ...F16_DEFAULT, bk: 16, double: true } });
    expect(f16Plan(gemm('NT', 4096, 128, 896), dbl)).toEqual(f16Plan(gemm('NT', 4096, 128, 896), opts));
    expect(f16Plan(gemm('NT', 4096, 4864, 896), { ...dbl, variant: F16_SMALL })).not.toHaveProperty('variant');
  });

  it('refuses a vec4 tile whose workgroup memory passes 32 KiB, naming tile, K step and form', () => {
    const nt = gemm('NT', 4096, 4864, 896);
    expect(() => gemmF16VecProgram(nt, 1, { ...opts, variant: { ...F16_2X4, bk: 64 } })).toThrow(/128x128 tile with K step 64 needs 45056 bytes .* form NT \(at most 32768\)/);
    expect(() => gemmF16VecProgram(nt, 1, { ...opts, variant: { ...F16_DEFAULT, double: true } })).toThrow(/K step 32, double-buffered, needs/);
    expect(() => gemmF16VecProgram(nt, 1, { ...opts, variant: { sgRows: 2, sgCols: 4, sgm: 64, sgn: 64, bk: 32 } })).toThrow(/128x256 tile with K step 32/);
    // What the plans and the sweep run fits, in every form.
    for (const f of [nt, gemm('NN', 4096, 896, 4864), gemm('TN', 4864, 896, 4096)])
      for (const variant of [F16_DEFAULT, F16_2X4, F16_DOUBLE, F16_SMALL, { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 16, double: true }, { sgRows: 4, sgCols: 2, sgm: 64, sgn: 64, bk: 16 }])
        expect(gemmF16VecProgram(f, 1, { ...opts, variant }).source().decls).toContain('var<workgroup> As');
  });

  it("honours an explicit K split and a variant tile's own grid", () => {
    expect(f16Plan(gemm('NT', 4096, 128, 896, { splitK: 2 }), opts)).toEqual({ kernel: 'vec', small: false, split: 2 });
    // 64×64 variant: 64 × 14 = 896 tiles at 4096 × 896 fill the GPU, K = 896 → no split; 2048 × 128: 32 × 2 = 64 tiles → split 3.
    expect(f16Plan(gemm('NT', 4096, 896, 896), { ...opts, variant: { sgRows: 2, sgCols: 2, sgm: 32, sgn: 32, bk: 32 } })).toEqual({ kernel: 'vec', small: false, split: 1 });
    expect(f16Plan(gemm('NT', 2048, 128, 896), { ...opts, variant: { sgRows: 2, sgCols: 2, sgm: 32, sgn: 32, bk: 32 } })).toEqual({ kernel: 'vec', small: false, split: 3 });
  });
});
