import { describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/webgpu/context.js';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { linearCrossEntropyGradRef, linearCrossEntropyRef, type LinearCEOptions } from './reference.js';
import { ligerChunkSize } from './schema.js';
import { fusedLinearCrossEntropy, gpuChunkRows, type FlceArgs } from './webgpu/flce.js';

const env = await gpuEnv();

interface Case {
  seed: number;
  n: number;
  h: number;
  v: number;
  opts: LinearCEOptions;
  bias?: boolean;
  chunkRows?: number;
  labelType?: 'int64' | 'int32';
  gradOutput?: number | 'rows';
  /** Every k-th label is ignore_index. */
  ignoreEvery?: number;
  /** Initial value of every gradWeight element (with accumulate). */
  prior?: number;
}

/** Run the kernel and the float64 reference; return the relative L2 errors and the outputs. */
async function check(ctx: GpuContext, c: Case, extra: Partial<FlceArgs> = {}) {
  const r = rng(c.seed);
  const { n, h, v } = c;
  const hidden = randn(r, n * h), weight = randn(r, v * h, 0.5), bias = c.bias ? randn(r, v) : undefined;
  const ignore = c.opts.ignoreIndex ?? -100;
  const lab = Array.from({ length: n }, (_, i) => (c.ignoreEvery && i % c.ignoreEvery === 1 % c.ignoreEvery ? ignore : Math.floor(r() * v)));
  const labels = c.labelType === 'int32' ? Int32Array.from(lab) : BigInt64Array.from(lab, BigInt);
  const go = c.gradOutput === 'rows' ? randn(r, n) : Float32Array.of(c.gradOutput ?? 1);
  const out = fusedLinearCrossEntropy(ctx, {
    hidden: ctx.upload('hidden', hidden), weight: ctx.upload('weight', weight), bias: bias && ctx.upload('bias', bias),
    labels: ctx.upload('labels', labels), labelType: c.labelType, n, h, v, chunkRows: c.chunkRows,
    ignoreIndex: c.opts.ignoreIndex, reduction: c.opts.reduction, labelSmoothing: c.opts.labelSmoothing,
    gradOutput: c.gradOutput === undefined ? undefined : ctx.upload('gradOutput', go), ...extra,
  });
  const x = { n, h, v, hidden, weight, bias, labels: lab };
  const ref = linearCrossEntropyRef(x, c.opts);
  const g = linearCrossEntropyGradRef(x, c.opts, c.gradOutput === 'rows' ? go : c.gradOutput ?? 1);
  const loss = await ctx.readF32(out.loss, ref.loss.length);
  const err = {
    loss: relL2(loss, ref.loss),
    dHidden: out.gradHidden && relL2(await ctx.readF32(out.gradHidden, n * h), g.dHidden),
    dWeight: out.gradWeight && relL2(await ctx.readF32(out.gradWeight, v * h), g.dWeight.map((w) => w + (c.prior ?? 0))),
    dBias: out.gradBias && relL2(await ctx.readF32(out.gradBias, v), g.dBias),
  };
  console.info(`flce n=${n} h=${h} v=${v} chunk=${out.chunkRows} sg=${ctx.subgroups} ${JSON.stringify(c.opts)}: ` +
    Object.entries(err).filter(([, e]) => e !== undefined).map(([k, e]) => `${k} ${e!.toExponential(2)}`).join(' '));
  return { err, out, loss, ref, g };
}

function expectClose(err: { loss: number; dHidden?: number; dWeight?: number; dBias?: number }) {
  expect(err.loss).toBeLessThan(1e-5);
  for (const e of [err.dHidden, err.dWeight, err.dBias]) if (e !== undefined) expect(e).toBeLessThan(1e-4);
}

describe('gpuChunkRows', () => {
  it('takes Liger\'s rule, at least 1024 rows (256 when asked: the budgeted runs), at most one storage binding', () => {
    expect(gpuChunkRows(103, 1000, 32, 2 ** 31)).toBe(103);
    expect(gpuChunkRows(4096, 151936, 896, 2 ** 31 - 4)).toBe(1024);
    expect(gpuChunkRows(4096, 151936, 896, 2 ** 31 - 4, 256)).toBe(256);
    expect(gpuChunkRows(262144, 32000, 64, 2 ** 31)).toBe(1024);
    expect(gpuChunkRows(4096, 151936, 896, 100 * 151936 * 4)).toBe(100);
  });
});

describe.skipIf(!env.ctx)('FusedLinearCrossEntropy WGSL kernel vs float64 reference (dawn.node)', () => {
  const base = env.ctx!;
  const variants = base.subgroups ? [base, new GpuContext(base.device, { log: base.log, subgroups: false })] : [base];

  for (const ctx of variants)
    it(`mean, ignored rows, Liger chunk that does not divide N (subgroups=${ctx.subgroups})`, async () => {
      const c: Case = { seed: 1, n: 103, h: 32, v: 1000, opts: {}, ignoreEvery: 5, chunkRows: ligerChunkSize(103, 1000, 32) };
      expect(c.chunkRows).toBe(4);
      const { err, out } = await check(ctx, c);
      expect(out.chunkRows).toBe(4);
      expectClose(err);
    });

  it('sum, label smoothing, bias, int32 labels, gradOutput 1.5, chunk 5 of 23 rows', async () => {
    const { err } = await check(base, { seed: 2, n: 23, h: 24, v: 517, opts: { reduction: 'sum', labelSmoothing: 0.1, ignoreIndex: 7 }, bias: true, labelType: 'int32', gradOutput: 1.5, chunkRows: 5, ignoreEvery: 4 });
    expectClose(err);
  });

  it("'none' with a per-row gradOutput, and accumulation into existing gradients", async () => {
    const c: Case = { seed: 3, n: 19, h: 16, v: 300, opts: { reduction: 'none', labelSmoothing: 0.05 }, gradOutput: 'rows', chunkRows: 4, ignoreEvery: 6, prior: 0.25 };
    const gradWeight = base.upload('prior', new Float32Array(c.v * c.h).fill(0.25));
    const { err, out } = await check(base, c, { accumulate: true, out: { gradWeight } });
    expect(out.gradWeight).toBe(gradWeight);
    expectClose(err);
  });

  it('all rows ignored: mean is NaN (as torch), gradients zero; invalid labels are counted', async () => {
    const r = rng(4);
    const all = fusedLinearCrossEntropy(base, {
      hidden: base.upload('h', randn(r, 72)), weight: base.upload('w', randn(r, 400)), labels: base.upload('y', new BigInt64Array(9).fill(-100n)), n: 9, h: 8, v: 50, chunkRows: 4,
    });
    expect(Number.isNaN((await base.readF32(all.loss, 1))[0])).toBe(true);
    expect(Array.from(await base.readF32(all.gradHidden!, 72)).every((x) => x === 0)).toBe(true);
    expect(Array.from(await base.readF32(all.gradWeight!, 400)).every((x) => x === 0)).toBe(true);
    // label 50 (= V) and -1 are invalid: rows treated as ignored, stats[1] reports them.
    const labels = base.upload('labels', BigInt64Array.from([3n, 50n, -1n, 7n]));
    const bad = fusedLinearCrossEntropy(base, { hidden: base.upload('h', new Float32Array(32).fill(0.1)), weight: base.upload('w', new Float32Array(400).fill(0.2)), labels, n: 4, h: 8, v: 50 });
    const stats = await base.readF32(bad.stats, 4);
    expect([stats[0], stats[1]]).toEqual([2, 1 + 1]);
    expect((await base.readF32(bad.loss, 1))[0]).toBeCloseTo(Math.log(50), 5);
  });

  it('loss only (grads: false) allocates no gradient buffers', async () => {
    const from = base.log.records.length;
    const { err, out } = await check(base, { seed: 5, n: 11, h: 8, v: 70, opts: { reduction: 'sum' } }, { grads: false });
    expect(out.gradHidden).toBeUndefined();
    expect(base.log.since(from).some((r) => r.label.includes('grad'))).toBe(false);
    expect(err.loss).toBeLessThan(1e-5);
  });

  it('vocab 151936: matches the reference and never allocates an [N, V] buffer', async () => {
    const n = 37, h = 16, v = 151936, chunkRows = 16;
    const from = base.log.records.length;
    const { err, out } = await check(base, { seed: 6, n, h, v, opts: {}, chunkRows, ignoreEvery: 9 });
    expectClose(err);
    const recs = base.log.since(from);
    const largest = recs.reduce((a, b) => (b.size > a.size ? b : a));
    console.info(`vocab ${v}: ${recs.length} allocations, largest '${largest.label}' ${largest.size} B; N·V·4 = ${n * v * 4} B`);
    expect(recs.find((r) => r.label === 'flce.logitsChunk')?.size).toBe(chunkRows * v * 4);
    expect(recs.every((r) => r.size < n * v * 4)).toBe(true);
    // one logits chunk and one split-K scratch serve all chunks
    expect(recs.filter((r) => r.label === 'flce.logitsChunk' || r.label === 'matmul.splitK').length).toBe(2);
    expect(out.chunkRows).toBe(chunkRows);
  });

  it('rejects mismatched inputs with readable errors', () => {
    const b = base.buffer('b', 64);
    expect(() => fusedLinearCrossEntropy(base, { hidden: b, weight: b, labels: b, n: 4, h: 8, v: 10 })).toThrow(/FusedLinearCrossEntropy: buffer 'hidden' has 64 bytes, needs 128/);
    expect(() => fusedLinearCrossEntropy(base, { hidden: b, weight: b, labels: b, n: 1, h: 1, v: 1, labelSmoothing: 2 })).toThrow(/label_smoothing=2/);
    // The matrix-staged experiment needs precision 'f16' on the tensor cores (this context has none).
    const big = base.buffer('big', 4096);
    expect(() => fusedLinearCrossEntropy(base, { hidden: big, weight: big, labels: big, n: 2, h: 4, v: 8, precision: 'f16', gemm: 'staged' })).toThrow(/gemm 'staged' runs precision 'f16' on the tensor cores/);
  });
});
