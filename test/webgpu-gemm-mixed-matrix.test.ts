/**
 * Precision 'f16' on the tensor cores: gemmMixed with `ctx.f16Matrix` set runs gemm_f16 (operands
 * converted to f16 when staged). Runs only where dawn.node offers 'chromium-experimental-subgroup-matrix'
 * and 'shader-f16' (an NVIDIA GPU with DAWN_F16_MATRIX_TOGGLES; SwiftShader has neither: skipped
 * there, the reason printed). Checks the same float64 references with f16-rounded operands as the
 * gemm_f32 + round_f16 path (webgpu-gemm-mixed.test.ts and the ops' webgpu-precision tests),
 * including the conversion's rounding (nearest even, ±inf, subnormals kept), which WGSL leaves to
 * the implementation.
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { DAWN_F16_MATRIX_TOGGLES, loadDawn, requestNodeAdapter, requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
import { gemmMixed } from '../src/webgpu/gemm-mixed.js';
import { gemmF16, pickF16Config, probeMatrixSyntax } from '../src/webgpu/gemm-f16.js';
import { F16_2X4, type F16Variant } from '../src/webgpu/gemm-f16-plan.js';
import type { MatmulArgs } from '../src/webgpu/matmul.js';
import { roundToFloat16 } from '../src/onnx/half.js';
import { swigluMlpGradRef, swigluMlpRef } from '../custom-ops/swiglu-mlp/reference.js';
import { swigluMlpBackward, swigluMlpForward } from '../custom-ops/swiglu-mlp/webgpu/mlp.js';
import { linearCrossEntropyGradRef } from '../custom-ops/fused-linear-cross-entropy/reference.js';
import { fusedLinearCrossEntropy } from '../custom-ops/fused-linear-cross-entropy/webgpu/flce.js';
import { gemmRef, gqaBatch, randn, relL2, rng, runBatch } from './webgpu-helpers.js';

const MATRIX = 'chromium-experimental-subgroup-matrix';

async function matrixContext(): Promise<{ ctx?: GpuContext; skip?: string }> {
  useSwiftShaderIfPresent();
  await loadDawn([DAWN_F16_MATRIX_TOGGLES]); // the toggles count on the first load only
  const adapter = await requestNodeAdapter();
  if (!adapter) return { skip: 'no WebGPU adapter' };
  const device = await requestNodeDevice({ features: ['shader-f16', MATRIX] });
  if (!device.features.has(MATRIX as GPUFeatureName) || !device.features.has('shader-f16')) return { skip: `the adapter (${adapter.info.description || adapter.info.vendor}) offers no ${MATRIX} / shader-f16` };
  const configs = (adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: Parameters<typeof pickF16Config>[0] }).subgroupMatrixConfigs ?? [];
  const config = pickF16Config(configs);
  if (!config) return { skip: `no f16→f32 subgroup-matrix config fits (${JSON.stringify(configs)})` };
  const { syntax, messages } = await probeMatrixSyntax(device, config);
  if (!syntax) throw new Error(`gemm_f16 compiles in neither matrix syntax:\n${messages.join('\n')}`);
  const ctx = new GpuContext(device);
  ctx.f16Matrix = { config, syntax };
  return { ctx };
}

const env = await matrixContext();
if (env.skip) console.warn(`\n*** gemmMixed on tensor cores SKIPPED: ${env.skip} ***\n`);

describe.skipIf(!env.ctx)("precision 'f16' on the tensor cores (ctx.f16Matrix) vs float64 of f16-rounded operands", () => {
  const ctx = env.ctx!;

  it('GEMM forms and edges (vec4 and scalar staging)', async () => {
    const cases: [number, number, number, Partial<MatmulArgs>][] = [[512, 384, 256, { transB: true }], [300, 260, 40, { transB: true }], [70, 33, 57, {}], [20, 36, 700, { transA: true, accumulate: true, splitK: 3 }],
      // The vec4 kernel in 16 K slices (f16Plan: 16 large tiles fill the GPU only split).
      [512, 512, 4096, {}]];
    for (const [m, n, k, opt] of cases) {
      const r = rng(m + n + k);
      const ta = opt.transA ?? false, tb = opt.transB ?? false;
      const A = randn(r, m * k), B = randn(r, k * n), C0 = randn(r, m * n);
      const c = ctx.upload('C', C0);
      gemmMixed(ctx, { m, n, k, a: { buffer: ctx.upload('A', A), ld: ta ? m : k }, b: { buffer: ctx.upload('B', B), ld: tb ? k : n }, c: { buffer: c, ld: n }, ...opt });
      const got = await ctx.readF32(c, m * n);
      const acc = opt.accumulate ? C0 : undefined;
      const e = relL2(got, gemmRef(m, n, k, Float32Array.from(roundToFloat16(A)), Float32Array.from(roundToFloat16(B)), ta, tb, 1, acc));
      console.info(`gemm_f16 via gemmMixed ${m}x${n}x${k} ${JSON.stringify(opt)}: ${e.toExponential(2)}`);
      expect(e).toBeLessThan(k > 1000 ? 1e-5 : 1e-6); // fp32 accumulation error grows with K
    }
  });

  it('the tile variants of the sweep (F16Variant) in four layouts, accumulating and split', async () => {
    const tiles: F16Variant[] = [
      { ...F16_2X4, bk: 16 }, { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 32 },
      { sgRows: 4, sgCols: 2, sgm: 32, sgn: 64, bk: 32 }, { sgRows: 2, sgCols: 2, sgm: 32, sgn: 32, bk: 32 },
      { sgRows: 2, sgCols: 4, sgm: 64, sgn: 64, bk: 16 }, { sgRows: 4, sgCols: 2, sgm: 64, sgn: 64, bk: 16 },
      { ...F16_2X4, bk: 16, double: true }, { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 16, double: true },
    ];
    const forms: [number, number, number, Partial<MatmulArgs>][] = [[520, 300, 136, { transB: true }], [300, 520, 72, {}], [264, 136, 300, { transA: true, accumulate: true }], [136, 264, 700, { transA: true, transB: true, splitK: 3 }]];
    for (const variant of tiles)
      for (const [m, n, k, opt] of forms) {
        const r = rng(m + n + k);
        const ta = opt.transA ?? false, tb = opt.transB ?? false;
        const A = randn(r, m * k), B = randn(r, k * n), C0 = randn(r, m * n);
        const c = ctx.upload('C', C0);
        gemmF16(ctx, { m, n, k, a: { buffer: ctx.upload('A', A), ld: ta ? m : k }, b: { buffer: ctx.upload('B', B), ld: tb ? k : n }, c: { buffer: c, ld: n }, ...opt }, { ...ctx.f16Matrix!, variant });
        const e = relL2(await ctx.readF32(c, m * n), gemmRef(m, n, k, Float32Array.from(roundToFloat16(A)), Float32Array.from(roundToFloat16(B)), ta, tb, 1, opt.accumulate ? C0 : undefined));
        expect(e, `${JSON.stringify(variant)} ${m}x${n}x${k} ${JSON.stringify(opt)}`).toBeLessThan(1e-6);
      }
  });

  it('batched GEMMs (attention: GQA two-level index): vec4 staging on the 128 tile, scalar staging on the 64 tile, TN, a triangle', async () => {
    const cases: [string, Parameters<typeof runBatch>[2]][] = [
      ['NT vec4, 128 tile', { m: 256, n: 200, k: 64, transB: true, alpha: 0.125, tile: { tm: 8, tn: 8 }, batch: gqaBatch(256, 200, 64) }],
      ['NN scalar, 64 tile', { m: 130, n: 64, k: 130, batch: gqaBatch(130, 64, 130) }],
      ['TN, plain strides', { m: 96, n: 64, k: 260, transA: true, batch: { count: 4, strideA: 260 * 96, strideB: 260 * 64, strideC: 96 * 64 } }],
      ['NT vec4, lowerC (tiles past the diagonal skipped)', { m: 300, n: 300, k: 64, transB: true, tile: { tm: 8, tn: 8 }, batch: { ...gqaBatch(300, 300, 64), triangle: 'lowerC' } }],
    ];
    for (const [name, args] of cases) {
      const { got, want } = await runBatch(ctx, gemmMixed, args, true);
      const e = relL2(got, want);
      console.info(`batched gemm_f16 ${name}: ${e.toExponential(2)}`);
      expect(e, name).toBeLessThan(1e-6);
    }
  });

  it('converts exactly as IEEE half, nearest even (ties, ±inf, subnormals)', async () => {
    const r = rng(11);
    const special = [65504, 65519.996, 65520, 70000, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1e-7, 3e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, 1 / 3];
    const values = [...special, ...special.map((v) => -v), ...Array.from({ length: 4000 }, () => (r() - 0.5) * 2 ** (Math.floor(r() * 44) - 28))];
    const m = values.length;
    const c = ctx.buffer('C', m * 4);
    gemmMixed(ctx, { m, n: 1, k: 1, a: { buffer: ctx.upload('A', Float32Array.from(values)), ld: 1 }, b: { buffer: ctx.upload('B', Float32Array.of(1)), ld: 1 }, c: { buffer: c, ld: 1 } });
    const got = await ctx.readF32(c, m);
    const want = roundToFloat16(values);
    const wrong = Array.from(got).map((g, i) => [values[i], g, want[i]]).filter(([, g, w]) => g !== w);
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it('SwiGLUMLP kernels and the FLCE weight gradient', async () => {
    const [m, h, i] = [256, 128, 384];
    const r = rng(5);
    const x = randn(r, m * h), wg = randn(r, i * h, 0.1), wu = randn(r, i * h, 0.1), wd = randn(r, h * i, 0.1), dy = randn(r, m * h);
    const bufs = { x: ctx.upload('x', x), wGate: ctx.upload('wg', wg), wUp: ctx.upload('wu', wu), wDown: ctx.upload('wd', wd), m, h, i, precision: 'f16' as const };
    const y = await ctx.readF32(swigluMlpForward(ctx, bufs), m * h);
    const g = swigluMlpBackward(ctx, { ...bufs, dy: ctx.upload('dy', dy) });
    const ref = swigluMlpGradRef(x, wg, wu, wd, dy, { m, h, i }, { f16: true });
    expect(relL2(y, swigluMlpRef(x, wg, wu, wd, { m, h, i }, { f16: true })), 'y').toBeLessThan(5e-5);
    expect(relL2(await ctx.readF32(g.dwGate!, i * h), ref.dwGate), 'dwGate').toBeLessThan(5e-5);
    expect(relL2(await ctx.readF32(g.dx!, m * h), ref.dx), 'dx').toBeLessThan(5e-5);

    const [n, hh, v] = [256, 64, 4096];
    const hid = randn(r, n * hh), w = randn(r, v * hh, 0.05);
    const labels = Array.from({ length: n }, () => Math.floor(r() * v));
    const out = fusedLinearCrossEntropy(ctx, { hidden: ctx.upload('h', hid), weight: ctx.upload('w', w), labels: ctx.upload('y', BigInt64Array.from(labels, BigInt)), n, h: hh, v, precision: 'f16' });
    const want = linearCrossEntropyGradRef({ n, h: hh, v, hidden: hid, weight: w, labels }, { f16: true }, 1);
    expect(relL2(await ctx.readF32(out.gradWeight!, v * hh), want.dWeight), 'flce dW').toBeLessThan(2e-5);
  });
});
