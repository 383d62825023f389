/**
 * GpuContext's dispatch caches on dawn.node (SwiftShader here): bind groups reused across
 * dispatches on the same buffers must still see each dispatch's own uniforms (a dynamic offset into
 * the uniform ring), a replaced buffer must never meet a group made for the old one, a submit with
 * more dispatches than the ring has slots must keep every dispatch's uniforms, and programs that
 * share a name and cache key but differ in signature must get their own pipelines.
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { pipelineCount, type Program } from '../src/webgpu/program.js';
import { RING_SLOTS } from '../src/webgpu/uniform-ring.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();

/** y[i] += a·x[i] for i < n (one workgroup of 64). */
function axpy(a: number, n: number, name = 'test_axpy'): Program {
  return {
    name, cacheKey: 'f32', workgroupSize: [64], dispatch: [1, 1, 1],
    uniforms: [{ name: 'n', type: 'u32', value: n }, { name: 'a', type: 'f32', value: a }],
    bindings: [{ name: 'x', access: 'read', type: 'f32' }, { name: 'y', access: 'read_write', type: 'f32' }],
    source: () => ({ main: 'if (lidx < u.n) { y[lidx] = y[lidx] + u.a * x[lidx]; }' }),
  };
}

const N = 8;
const xs = (base: number) => Float32Array.from({ length: N }, (_, i) => base + i);

describe.skipIf(!env.ctx)('GpuContext dispatch caches', () => {
  // A context of its own: the counters below start from zero.
  const ctx = new GpuContext(env.ctx!.device);

  it('gives each dispatch of a reused bind group its own uniforms, within and across submits', async () => {
    const x = ctx.upload('x', xs(1)), y = ctx.buffer('y', N * 4);
    for (const a of [1, 10, 100]) ctx.run(axpy(a, N), [x, y]);
    ctx.submit();
    ctx.run(axpy(1000, N - 2), [x, y]); // another n: the last two elements keep 111·x
    const got = await ctx.readF32(y, N);
    expect(Array.from(got)).toEqual(Array.from(xs(1), (v, i) => v * (i < N - 2 ? 1111 : 111)));
    // The cache was in play: four dispatches, one bind group.
    expect(ctx.bindGroupStats.created).toBe(1);
    expect(ctx.bindGroupStats.hits).toBe(3);
  });

  it('never reuses a bind group with a replaced buffer', async () => {
    const y = ctx.buffer('y', N * 4);
    let x = ctx.upload('x', xs(1));
    ctx.run(axpy(1, N), [x, y]);
    await ctx.sync();
    x.destroy();
    x = ctx.upload('x', xs(100)); // same size and label, a new buffer
    ctx.run(axpy(1, N), [x, y]);
    expect(Array.from(await ctx.readF32(y, N))).toEqual(Array.from(xs(1), (v, i) => v + 100 + i));
    // A replaced output: the new one is written, the old one left alone.
    const y2 = ctx.buffer('y2', N * 4);
    ctx.run(axpy(2, N), [x, y2]);
    expect(Array.from(await ctx.readF32(y2, N))).toEqual(Array.from(xs(100), (v) => 2 * v));
    expect(Array.from(await ctx.readF32(y, N))).toEqual(Array.from(xs(1), (v, i) => v + 100 + i));
  });

  it('keeps every uniform when one submit records more dispatches than the ring holds', async () => {
    const x = ctx.upload('x', Float32Array.from({ length: N }, () => 1)), y = ctx.buffer('y', N * 4);
    const count = RING_SLOTS + 100;
    // Distinct small integers sum exactly in f32: 1 + 2 + ... + count.
    for (let a = 1; a <= count; a++) ctx.run(axpy(a, N), [x, y]);
    const got = await ctx.readF32(y, N);
    expect(Array.from(got)).toEqual(Array(N).fill((count * (count + 1)) / 2));
  });

  it('compiles one pipeline per signature, not per name and cache key', async () => {
    const x = ctx.upload('x', xs(1)), y = ctx.buffer('y', N * 4);
    ctx.run(axpy(1, N, 'test_sig'), [x, y]);
    const before = pipelineCount(ctx.device);
    ctx.run(axpy(3, N, 'test_sig'), [x, y]);
    expect(pipelineCount(ctx.device)).toBe(before);
    // Same name and key, one more uniform (the WGSL struct differs): a new pipeline.
    const wider = axpy(1, N, 'test_sig');
    ctx.run({ ...wider, uniforms: [...wider.uniforms, { name: 'pad', type: 'u32', value: 0 }] }, [x, y]);
    expect(pipelineCount(ctx.device)).toBe(before + 1);
    expect(Array.from(await ctx.readF32(y, N))).toEqual(Array.from(xs(1), (v) => 5 * v));
  });

  it('rejects uniforms that do not fit their type, naming them', () => {
    const x = ctx.buffer('x', N * 4), y = ctx.buffer('y', N * 4);
    expect(() => ctx.run(axpy(1, -1), [x, y])).toThrow(/uniform n=-1 is not a u32/);
    ctx.discard();
  });
});

describe.skipIf(!env.ctx)('GpuContext buffer pool (poolBytes)', () => {
  it('reuses a released buffer of the same size, zero-filled, after the commands that read it; destroys beyond the cap', async () => {
    const ctx = new GpuContext(env.ctx!.device, { poolBytes: 3 * N * 4 });
    const x = ctx.upload('x', xs(1));
    const a = ctx.buffer('a', N * 4);
    ctx.run(axpy(2, N), [x, a]); // a = 2x
    const out = ctx.buffer('out', N * 4);
    ctx.run(axpy(1, N), [a, out]); // out = a (the last reader of a, recorded, not yet submitted)
    ctx.release(a);
    ctx.release(a); // twice: still one pooled buffer, not two
    const b = ctx.buffer('b', N * 4); // a again, cleared after out read it
    expect(ctx.buffer('b2', N * 4)).not.toBe(a);
    expect(b).toBe(a);
    expect(ctx.reused).toBe(1);
    expect(Array.from(await ctx.readF32(out, N))).toEqual(Array.from(xs(1), (v) => 2 * v));
    expect(Array.from(await ctx.readF32(b, N))).toEqual(new Array(N).fill(0));
    // Another size is not served from the pool; temporaries go back to it at submit.
    const t = ctx.temp('t', 2 * N * 4);
    ctx.run(axpy(1, N), [x, t]);
    expect(ctx.buffer('c', 4 * N * 4)).not.toBe(t);
    ctx.submit();
    expect(ctx.buffer('t2', 2 * N * 4)).toBe(t);
    // Over the cap (3 · N floats): released buffers are destroyed, not kept.
    const big = ctx.buffer('big', 4 * N * 4);
    ctx.release(big);
    expect(ctx.buffer('big2', 4 * N * 4)).not.toBe(big);
    // An uploaded buffer is never pooled.
    ctx.release(x);
    expect(ctx.buffer('d', N * 4)).not.toBe(x);
    ctx.destroy();
  });

  it("init 'any': a reused buffer keeps its contents (no clear, so no pass break); poisoned, it reads NaN", async () => {
    for (const poison of [false, true]) {
      const ctx = new GpuContext(env.ctx!.device, { poolBytes: 4 * N * 4, poison });
      const x = ctx.upload('x', xs(1));
      const a = ctx.buffer('a', N * 4);
      ctx.run(axpy(3, N), [x, a]); // a = 3x
      ctx.submit();
      ctx.release(a);
      const b = ctx.buffer('b', N * 4, 'any');
      expect(b).toBe(a);
      expect(ctx.cleared).toBe(0);
      const got = Array.from(await ctx.readF32(b, N));
      if (poison) expect(got.every(Number.isNaN)).toBe(true);
      else expect(got).toEqual(Array.from(xs(1), (v) => 3 * v));
      ctx.destroy();
    }
  });

  it('steps: each request gets the buffer its counterpart got in the last step; the step working set stays pooled, the rest is trimmed to poolBytes', () => {
    const ctx = new GpuContext(env.ctx!.device, { poolBytes: 2 * N * 4 });
    // Outside a step: a spare buffer of another size lands in the pool.
    const spare = ctx.buffer('spare', 2 * N * 4);
    const sizes = [N, N, 3 * N, N];
    const step = () => {
      ctx.holdPool(true);
      const got = sizes.map((n, i) => ctx.buffer(`v${i}`, n * 4, 'any'));
      // Released in an order that would hand them out permuted next time (LIFO).
      for (const i of [1, 3, 0, 2]) ctx.release(got[i]);
      ctx.holdPool(false);
      return got;
    };
    ctx.release(spare);
    const first = step();
    expect(new Set(first).size).toBe(4);
    const second = step();
    const third = step();
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(ctx.reused).toBe(8);
    // The step's 6·N floats stay pooled over poolBytes (2·N floats); the spare (2·N), unused by the step, fits the cap.
    expect(ctx.buffer('again', 2 * N * 4)).toBe(spare);
    ctx.destroy();
  });

  it('trims what the step did not use beyond poolBytes', () => {
    const ctx = new GpuContext(env.ctx!.device, { poolBytes: N * 4 });
    const spares = [ctx.buffer('s1', 2 * N * 4), ctx.buffer('s2', 2 * N * 4)];
    ctx.holdPool(true);
    for (const s of spares) ctx.release(s); // pooled while held
    const v = ctx.buffer('v', N * 4);
    ctx.release(v);
    ctx.holdPool(false);
    // Both spares (4·N floats) were unused by the step and exceed the N-float cap: destroyed; the step's buffer kept.
    expect(spares).not.toContain(ctx.buffer('x', 2 * N * 4));
    ctx.holdPool(true);
    expect(ctx.buffer('v2', N * 4)).toBe(v);
    ctx.holdPool(false);
    ctx.destroy();
  });
});
