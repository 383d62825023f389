import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { causalAttentionGradRef, causalAttentionProductsRef, causalAttentionRef } from './reference.js';
import { causalAttentionBackward, causalAttentionForward } from './webgpu/attention.js';
import type { AttnDims } from './schema.js';

const env = await gpuEnv();

/** Upload, run forward and backward (the backward reads the kernel's own o and lse), read back. */
async function run(ctx: NonNullable<Awaited<typeof env>['ctx']>, dims: AttnDims, q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, precision?: 'f16') {
  const { b, hq, hkv, t, d } = dims;
  const bufs = { q: ctx.upload('q', q), k: ctx.upload('k', k), v: ctx.upload('v', v) };
  const f = causalAttentionForward(ctx, { ...dims, ...bufs, precision });
  const g = causalAttentionBackward(ctx, { ...dims, ...bufs, o: f.o, lse: f.lse, dout: ctx.upload('do', dout), precision });
  const nq = b * hq * t * d, nkv = b * hkv * t * d;
  return {
    o: await ctx.readF32(f.o, nq), lse: await ctx.readF32(f.lse, b * hq * t),
    dq: await ctx.readF32(g.dq, nq), dk: await ctx.readF32(g.dk, nkv), dv: await ctx.readF32(g.dv, nkv),
  };
}

describe.skipIf(!env.ctx)('CausalAttention WGSL kernels (batched GEMMs) vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  // seed, B, Hq, Hkv, T, D, q/k scale: two rows; T below a tile; GQA 2:1, T = 70 across two 64-row
  // tiles; odd D with GQA 3:1; D = 128; peaked softmax (large scores); GQA 4:1 with T = 130 past
  // a 128-row tile; D above 128.
  const CASES = [[1, 1, 1, 1, 2, 3, 1], [2, 1, 2, 1, 5, 4, 1], [3, 2, 4, 2, 70, 64, 1], [4, 1, 3, 1, 37, 7, 1], [5, 1, 2, 2, 67, 128, 1], [6, 1, 2, 1, 40, 16, 4], [7, 1, 4, 1, 130, 24, 1], [8, 1, 2, 1, 9, 160, 1]] as const;
  for (const [seed, b, hq, hkv, t, d, mag] of CASES)
    it(`B=${b} Hq=${hq} Hkv=${hkv} T=${t} D=${d}${mag > 1 ? ' large scores' : ''}`, async () => {
      const r = rng(seed);
      const scale = 1 / Math.sqrt(d);
      const q = randn(r, b * hq * t * d, mag), k = randn(r, b * hkv * t * d, mag), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
      const dims = { b, hq, hkv, t, d, scale };
      const got = await run(ctx, dims, q, k, v, dout);
      const ref = causalAttentionRef(q, k, v, dims), gref = causalAttentionGradRef(q, k, v, dout, dims);
      const want = { ...ref, ...gref };
      const err = Object.fromEntries((['o', 'lse', 'dq', 'dk', 'dv'] as const).map((n) => [n, relL2(got[n], want[n])]));
      console.info(`causal-attention B=${b} Hq=${hq} Hkv=${hkv} T=${t} D=${d}: ${Object.entries(err).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(' ')}`);
      for (const [n, e] of Object.entries(err)) expect(e, n).toBeLessThan(1e-5);
    });

  it("precision 'f16': every GEMM operand rounded to half, vs float64 with the same roundings", async () => {
    const b = 1, hq = 4, hkv = 2, t = 33, d = 20;
    const r = rng(21);
    const q = randn(r, b * hq * t * d), k = randn(r, b * hkv * t * d), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
    const dims = { b, hq, hkv, t, d, scale: 1 / Math.sqrt(d) };
    const got = await run(ctx, dims, q, k, v, dout, 'f16');
    const rounded = causalAttentionProductsRef(q, k, v, dout, dims, true), exact = causalAttentionProductsRef(q, k, v, dout, dims, false);
    // The modelled reference without rounding is the textbook one.
    expect(relL2(exact.dq, causalAttentionGradRef(q, k, v, dout, dims).dq)).toBeLessThan(1e-12);
    for (const n of ['o', 'lse', 'dq', 'dk', 'dv'] as const) {
      const e = relL2(got[n], rounded[n]), e32 = relL2(got[n], exact[n]);
      console.info(`causal-attention f16 ${n}: vs rounded ${e.toExponential(2)}, vs unrounded ${e32.toExponential(2)}`);
      expect(e, n).toBeLessThan(1e-6);
      expect(e32, n).toBeGreaterThan(1e-5);
    }
  });

  it('scores left in the shared scratch by an earlier call (NaN here) do not reach the next call of the same submit', async () => {
    const b = 1, hq = 2, hkv = 1, t = 150, d = 8;
    const r = rng(31);
    const dims = { b, hq, hkv, t, d, scale: 0.5 };
    const q = randn(r, b * hq * t * d), k = randn(r, b * hkv * t * d), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
    const nan = (x: Float32Array) => x.map(() => NaN);
    // Same sizes, so the same scratch buffers: the first call fills them with NaN everywhere.
    const poisoned = { q: ctx.upload('q', nan(q)), k: ctx.upload('k', nan(k)), v: ctx.upload('v', nan(v)) };
    const pf = causalAttentionForward(ctx, { ...dims, ...poisoned });
    causalAttentionBackward(ctx, { ...dims, ...poisoned, o: pf.o, lse: pf.lse, dout: ctx.upload('do', nan(dout)) });
    const got = await run(ctx, dims, q, k, v, dout);
    const want = { ...causalAttentionRef(q, k, v, dims), ...causalAttentionGradRef(q, k, v, dout, dims) };
    for (const n of ['o', 'lse', 'dq', 'dk', 'dv'] as const) expect(relL2(got[n], want[n]), n).toBeLessThan(1e-5);
  });

  it('rejects bad sizes and a too-small buffer with readable errors', () => {
    const buf = (n: number) => ctx.buffer('b', n * 4);
    expect(() => causalAttentionForward(ctx, { b: 1, hq: 3, hkv: 2, t: 2, d: 4, scale: 1, q: buf(24), k: buf(16), v: buf(16) }))
      .toThrow(/CausalAttention: query heads 3 are not a multiple of kv heads 2/);
    expect(() => causalAttentionForward(ctx, { b: 1, hq: 2, hkv: 1, t: 4, d: 8, scale: 1, q: buf(64), k: buf(16), v: buf(32) }))
      .toThrow(/CausalAttention: buffer 'k' has 64 bytes, needs 128/);
    expect(() => causalAttentionBackward(ctx, { b: 1, hq: 1, hkv: 1, t: 4, d: 8, scale: 0, q: buf(32), k: buf(32), v: buf(32), o: buf(32), lse: buf(4), dout: buf(32) }))
      .toThrow(/CausalAttentionGrad: scale 0 must be a finite number > 0/);
  });
});
