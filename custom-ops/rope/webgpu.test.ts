import { describe, expect, it } from 'vitest';
import { gpuEnv, randn, relL2, rng } from '../../test/webgpu-helpers.js';
import { ropeGradRef, ropeRef, type RopeShape } from './reference.js';
import { ropeBackward, ropeForward } from './webgpu/rope.js';

const env = await gpuEnv();

/** HF-style cos/sin [bc, s, d] (duplicated halves) or arbitrary ones (the kernel must not rely on it). */
function tables(r: () => number, sh: RopeShape, hf: boolean): { cos: Float32Array; sin: Float32Array } {
  const n = sh.bc * sh.s * sh.d, half = sh.d / 2;
  const cos = new Float32Array(n), sin = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const j = i % sh.d, t = Math.floor(i / sh.d) % sh.s;
    const th = hf ? (t + 1) / 10000 ** ((j % half) / half) : 6.3 * r();
    cos[i] = Math.cos(th);
    sin[i] = Math.sin(th);
  }
  return { cos, sin };
}

/** [b, heads, s, d] → [b, s, heads, d]. */
function toBshd(x: Float32Array, sh: RopeShape): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < sh.b; b++) for (let h = 0; h < sh.heads; h++) for (let t = 0; t < sh.s; t++)
    out.set(x.subarray(((b * sh.heads + h) * sh.s + t) * sh.d, ((b * sh.heads + h) * sh.s + t + 1) * sh.d), ((b * sh.s + t) * sh.heads + h) * sh.d);
  return out;
}

describe.skipIf(!env.ctx)('RoPE WGSL kernel vs float64 reference (dawn.node)', () => {
  const ctx = env.ctx!;
  const cases: [number, RopeShape, boolean, 'bhsd' | 'bshd'][] = [
    [1, { b: 2, heads: 14, s: 9, d: 64, bc: 1 }, true, 'bhsd'],
    [2, { b: 3, heads: 2, s: 5, d: 6, bc: 3 }, false, 'bhsd'],
    [3, { b: 2, heads: 3, s: 7, d: 8, bc: 2 }, false, 'bshd'],
  ];
  for (const [seed, sh, hf, layout] of cases)
    it(`${JSON.stringify(sh)} ${hf ? 'HF tables' : 'arbitrary tables'} ${layout}`, async () => {
      const r = rng(seed);
      const n = sh.b * sh.heads * sh.s * sh.d;
      const x = randn(r, n), dy = randn(r, n);
      const { cos, sin } = tables(r, sh, hf);
      const cb = ctx.upload('cos', cos), sb = ctx.upload('sin', sin);
      const conv = (a: Float32Array) => (layout === 'bshd' ? toBshd(a, sh) : a);
      const xb = ctx.upload('x', conv(x)), db = ctx.upload('dy', conv(dy));
      ropeForward(ctx, { x: xb, cos: cb, sin: sb, ...sh, layout });
      ropeBackward(ctx, { x: db, cos: cb, sin: sb, ...sh, layout });
      const eY = relL2(await ctx.readF32(xb, n), conv(Float32Array.from(ropeRef(x, cos, sin, sh))));
      const eX = relL2(await ctx.readF32(db, n), conv(Float32Array.from(ropeGradRef(dy, cos, sin, sh))));
      console.info(`rope ${layout} ${JSON.stringify(sh)}: y ${eY.toExponential(2)} dx ${eX.toExponential(2)}`);
      expect(eY).toBeLessThan(1e-5);
      expect(eX).toBeLessThan(1e-4);
    });

  it('rejects an odd head dim', () => {
    const x = ctx.buffer('x', 1024);
    expect(() => ropeForward(ctx, { x, cos: x, sin: x, b: 1, heads: 1, s: 2, d: 5, bc: 1 })).toThrow(/head dim 5 is odd/);
  });
});
