import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { causalAttentionGradRef, causalAttentionRef } from './reference.js';
import { causalAttentionBackward, causalAttentionForward } from './webgpu/attention.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('CausalAttention WGSL kernels vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  // seed, B, Hq, Hkv, T, D, q/k scale: two rows; T below a tile; GQA 2:1 over two 64-row blocks and
  // several 32-row tiles (D = 64, T not a multiple of either); odd D with GQA 3:1; D = 128 (16-row
  // tiles); peaked softmax (large scores).
  const CASES = [[1, 1, 1, 1, 2, 3, 1], [2, 1, 2, 1, 5, 4, 1], [3, 2, 4, 2, 70, 64, 1], [4, 1, 3, 1, 37, 7, 1], [5, 1, 2, 2, 67, 128, 1], [6, 1, 2, 1, 40, 16, 4]] as const;
  for (const [seed, b, hq, hkv, t, d, mag] of CASES)
    it(`B=${b} Hq=${hq} Hkv=${hkv} T=${t} D=${d}${mag > 1 ? ' large scores' : ''}`, async () => {
      const r = rng(seed);
      const scale = 1 / Math.sqrt(d);
      const q = randn(r, b * hq * t * d, mag), k = randn(r, b * hkv * t * d, mag), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
      const dims = { b, hq, hkv, t, d, scale };
      const bufs = { q: ctx.upload('q', q), k: ctx.upload('k', k), v: ctx.upload('v', v) };
      const f = causalAttentionForward(ctx, { ...dims, ...bufs });
      const g = causalAttentionBackward(ctx, { ...dims, ...bufs, o: f.o, lse: f.lse, dout: ctx.upload('do', dout) });
      const ref = causalAttentionRef(q, k, v, dims), gref = causalAttentionGradRef(q, k, v, dout, dims);
      const nq = b * hq * t * d, nkv = b * hkv * t * d;
      const err = {
        o: relL2(await ctx.readF32(f.o, nq), ref.o),
        lse: relL2(await ctx.readF32(f.lse, b * hq * t), ref.lse),
        dq: relL2(await ctx.readF32(g.dq, nq), gref.dq),
        dk: relL2(await ctx.readF32(g.dk, nkv), gref.dk),
        dv: relL2(await ctx.readF32(g.dv, nkv), gref.dv),
      };
      console.info(`causal-attention B=${b} Hq=${hq} Hkv=${hkv} T=${t} D=${d}: ${Object.entries(err).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(' ')}`);
      for (const [n, e] of Object.entries(err)) expect(e, n).toBeLessThan(1e-5);
    });

  it('rejects a head size above 128 and a too-small buffer with readable errors', () => {
    const buf = (n: number) => ctx.buffer('b', n * 4);
    expect(() => causalAttentionForward(ctx, { b: 1, hq: 1, hkv: 1, t: 2, d: 130, scale: 1, q: buf(260), k: buf(260), v: buf(260) }))
      .toThrow(/CausalAttention: head size 130 is above the kernels' 128/);
    expect(() => causalAttentionForward(ctx, { b: 1, hq: 2, hkv: 1, t: 4, d: 8, scale: 1, q: buf(64), k: buf(16), v: buf(32) }))
      .toThrow(/CausalAttention: buffer 'k' has 64 bytes, needs 128/);
  });
});
