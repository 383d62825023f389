/**
 * The FusedLinearCrossEntropy WGSL kernel under precision 'f16' on dawn.node (SwiftShader here:
 * gemmMixed's gemm_f32 + round_f16 path) against the float64 reference with f16-rounded GEMM
 * operands, and further than the tolerance from the unrounded one; a vocabulary-sized V keeps the
 * weight gradient's softmax mass (1/n applied after the GEMMs, not inside their half operands).
 */
import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { linearCrossEntropyGradRef, linearCrossEntropyRef, type LinearCEOptions } from './reference.js';
import { fusedLinearCrossEntropy, type FlceArgs } from './webgpu/flce.js';

const env = await gpuEnv();

interface Case {
  seed: number; n: number; h: number; v: number; opts: LinearCEOptions; bias?: boolean; chunkRows?: number;
  gradOutput?: number; ignoreEvery?: number; prior?: number;
  /** Weight scale (default 0.5); small = flat softmax, every entry near 1/V. */
  wscale?: number;
}

describe.skipIf(!env.ctx)("FusedLinearCrossEntropy WGSL kernel, precision 'f16', vs float64 with rounded operands (dawn.node)", () => {
  const ctx = env.ctx!;

  async function run(c: Case, extra: Partial<FlceArgs> = {}) {
    const r = rng(c.seed);
    const { n, h, v } = c;
    const hidden = randn(r, n * h), weight = randn(r, v * h, c.wscale ?? 0.5), bias = c.bias ? randn(r, v) : undefined;
    const lab = Array.from({ length: n }, (_, i) => (c.ignoreEvery && i % c.ignoreEvery === 1 ? -100 : Math.floor(r() * v)));
    const out = fusedLinearCrossEntropy(ctx, {
      hidden: ctx.upload('hidden', hidden), weight: ctx.upload('weight', weight), bias: bias && ctx.upload('bias', bias),
      labels: ctx.upload('labels', BigInt64Array.from(lab, BigInt)), n, h, v, chunkRows: c.chunkRows,
      reduction: c.opts.reduction, labelSmoothing: c.opts.labelSmoothing,
      gradOutput: c.gradOutput === undefined ? undefined : ctx.upload('gradOutput', Float32Array.of(c.gradOutput)), precision: 'f16', ...extra,
    });
    const x = { n, h, v, hidden, weight, bias, labels: lab };
    const ref = (o: LinearCEOptions) => ({ loss: linearCrossEntropyRef(x, o).loss, ...linearCrossEntropyGradRef(x, o, c.gradOutput ?? 1) });
    // Accumulated gradients less the prior value they started from.
    const minusPrior = (a: Float32Array) => a.map((w) => w - (c.prior ?? 0));
    const got = {
      loss: await ctx.readF32(out.loss, 1),
      dHidden: await ctx.readF32(out.gradHidden!, n * h),
      dWeight: minusPrior(await ctx.readF32(out.gradWeight!, v * h)),
      dBias: out.gradBias && minusPrior(await ctx.readF32(out.gradBias, v)),
    };
    return { got, rounded: ref({ ...c.opts, f16: true }), plain: () => ref(c.opts), labels: lab };
  }

  /** Loss within 1e-6 and GEMM gradients within 2e-5 of the rounded reference, further from the unrounded one. */
  function expectRounded(c: Case, r: Awaited<ReturnType<typeof run>>) {
    const { got, rounded, plain } = r;
    const err = (want: typeof rounded) => ({
      loss: relL2(got.loss, want.loss), dHidden: relL2(got.dHidden, want.dHidden), dWeight: relL2(got.dWeight, want.dWeight),
      dBias: got.dBias && relL2(got.dBias, want.dBias),
    });
    const e = err(rounded), e32 = err(plain());
    console.info(`flce f16 n=${c.n} h=${c.h} v=${c.v} ${JSON.stringify(c.opts)}: rounded ${JSON.stringify(e)} unrounded ${JSON.stringify(e32)}`);
    expect(e.loss, 'loss').toBeLessThan(1e-6);
    expect(e.dHidden, 'dHidden').toBeLessThan(2e-5);
    expect(e.dWeight, 'dWeight').toBeLessThan(2e-5);
    if (e.dBias !== undefined) expect(e.dBias, 'dBias').toBeLessThan(1e-5);
    expect(e32.loss, 'loss vs unrounded').toBeGreaterThan(1e-6);
    expect(e32.dHidden, 'dHidden vs unrounded').toBeGreaterThan(2e-5);
    expect(e32.dWeight, 'dWeight vs unrounded').toBeGreaterThan(2e-5);
  }

  it('mean, ignored rows, chunk 4 that does not divide N', async () => {
    const c: Case = { seed: 1, n: 103, h: 32, v: 1000, opts: {}, ignoreEvery: 5, chunkRows: 4 };
    expectRounded(c, await run(c));
  });

  it('sum, label smoothing, bias, gradOutput 1.5, chunk 5 of 23 rows', async () => {
    const c: Case = { seed: 2, n: 23, h: 24, v: 517, opts: { reduction: 'sum', labelSmoothing: 0.1 }, bias: true, gradOutput: 1.5, chunkRows: 5, ignoreEvery: 4 };
    expectRounded(c, await run(c));
  });

  it('mean with gradOutput 0.5, accumulating into existing gradWeight and gradBias (their prior values unscaled)', async () => {
    const c: Case = { seed: 3, n: 41, h: 16, v: 300, opts: { labelSmoothing: 0.05 }, bias: true, gradOutput: 0.5, chunkRows: 8, ignoreEvery: 6, prior: 0.25 };
    const gradWeight = ctx.upload('prior', new Float32Array(c.v * c.h).fill(0.25)), gradBias = ctx.upload('priorB', new Float32Array(c.v).fill(0.25));
    expectRounded(c, await run(c, { accumulate: true, out: { gradWeight, gradBias } }));
  });

  it('all rows ignored: zero gradients (no 0·inf)', async () => {
    const r = rng(4);
    const all = fusedLinearCrossEntropy(ctx, {
      hidden: ctx.upload('h', randn(r, 72)), weight: ctx.upload('w', randn(r, 400)), labels: ctx.upload('y', new BigInt64Array(9).fill(-100n)), n: 9, h: 8, v: 50, chunkRows: 4, precision: 'f16',
    });
    expect(Array.from(await ctx.readF32(all.gradHidden!, 72)).every((x) => x === 0)).toBe(true);
    expect(Array.from(await ctx.readF32(all.gradWeight!, 400)).every((x) => x === 0)).toBe(true);
  });

  // A flat softmax (weight scale 0.05: logits within ±1): every entry near 1/V = 3e-5, so p / n is
  // about half's smallest subnormal (6e-8): inside the GEMM operand it would lose most of that mass.
  it('V=32000, N=512, flat softmax: the weight gradient keeps its norm and its softmax mass within 1e-2', async () => {
    const c: Case = { seed: 9, n: 512, h: 16, v: 32000, opts: {}, chunkRows: 128, wscale: 0.05 };
    const { got, rounded, labels } = await run(c);
    const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, t) => s + t * t, 0));
    expect(Math.abs(norm(got.dWeight) / norm(rounded.dWeight) - 1), 'norm of dW').toBeLessThan(1e-2);
    expect(relL2(got.dWeight, rounded.dWeight), 'dW').toBeLessThan(1e-2);
    // Classes no row is labelled with: their gradient is softmax mass alone (p / n ~ 6e-8: below half's normals).
    const labelled = new Set(labels);
    const mass = (a: ArrayLike<number>) => norm(Array.from(a).filter((_, e) => !labelled.has(Math.floor(e / c.h))));
    const m = mass(got.dWeight) / mass(rounded.dWeight);
    console.info(`flce f16 V=32000: softmax mass ratio ${m}`);
    expect(Math.abs(m - 1), 'softmax mass of dW').toBeLessThan(1e-2);
  });

  it("rejects precision 'f16' on the shared matmul", () => {
    const b = ctx.buffer('b', 1024);
    expect(() => fusedLinearCrossEntropy(ctx, { hidden: b, weight: b, labels: b, n: 4, h: 8, v: 10, precision: 'f16', gemm: 'shared' }))
      .toThrow(/FusedLinearCrossEntropy: precision 'f16' runs on gemmMixed, not the shared matmul/);
  });
});
