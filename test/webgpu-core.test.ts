import { describe, expect, it } from 'vitest';
import { adamw } from '../src/webgpu/adamw.js';
import { padTo16 } from '../src/webgpu/buffers.js';
import { matmul, type MatmulArgs } from '../src/webgpu/matmul.js';
import { generateWgsl, pipelineCount, type Program } from '../src/webgpu/program.js';
import { gemmError, gpuEnv, randn, relL2, rng } from './webgpu-helpers.js';

const env = await gpuEnv();

describe('program description', () => {
  it('generates the uniform struct and bindings from one list', () => {
    const p: Program = {
      name: 't', cacheKey: 'f32', workgroupSize: [64], dispatch: [1, 1, 1],
      uniforms: [{ name: 'rows', type: 'u32', value: 3 }, { name: 'eps', type: 'f32', value: 0.5 }],
      bindings: [{ name: 'x', access: 'read', type: 'f32' }, { name: 'y', access: 'read_write', type: 'f32' }],
      source: () => ({ main: 'y[0] = x[0] * u.eps;' }),
    };
    const w = generateWgsl(p);
    expect(w).toContain('struct Uniforms {\n  rows: u32,\n  eps: f32,\n};');
    expect(w).toContain('@group(0) @binding(1) var<storage, read> x: array<f32>;');
    expect(w).toContain('@group(0) @binding(2) var<storage, read_write> y: array<f32>;');
    expect(w).toContain('@workgroup_size(64, 1, 1)');
    expect(padTo16(60)).toBe(64);
    expect(padTo16(0)).toBe(16);
  });
});

describe.skipIf(!env.ctx)('shared matmul and AdamW on dawn.node', () => {
  const ctx = env.ctx!;
  const cases: [string, number, number, number, Partial<MatmulArgs>][] = [
    ['NT (logits = x·Wᵀ)', 37, 53, 29, { transB: true }],
    ['NN, long K, auto split-K (grad_x = dz·W)', 5, 30, 1700, {}],
    ['TN accumulating (grad_W += dzᵀ·x)', 70, 33, 9, { transA: true, accumulate: true }],
    ['TN accumulating, forced split-K 3', 66, 17, 900, { transA: true, accumulate: true, splitK: 3 }],
    ['NN, 8x8 register tile', 131, 129, 20, { tile: { tm: 8, tn: 8 } }],
  ];
  for (const [name, m, n, k, opt] of cases)
    it(`${name}: ${m}x${n}x${k}`, async () => {
      const e = await gemmError(ctx, matmul, m, n, k, opt);
      console.info(`matmul ${name} ${m}x${n}x${k}: ${e.toExponential(2)}`);
      expect(e).toBeLessThan(1e-5);
    });

  it('reuses the pipeline across shapes (shapes live in uniforms)', async () => {
    const r = rng(9);
    const run = (m: number) => {
      const A = ctx.upload('A', randn(r, m * 8)), B = ctx.upload('B', randn(r, 8 * 8)), C = ctx.buffer('C', m * 8 * 4);
      matmul(ctx, { m, n: 8, k: 8, a: { buffer: A, ld: 8 }, b: { buffer: B, ld: 8 }, c: { buffer: C, ld: 8 } });
    };
    run(3);
    await ctx.sync();
    const before = pipelineCount(ctx.device);
    run(5);
    run(11);
    await ctx.sync();
    expect(pipelineCount(ctx.device)).toBe(before);
  });

  it('rejects an operand that does not fit its buffer', () => {
    const b = ctx.buffer('b', 64);
    expect(() => matmul(ctx, { m: 4, n: 4, k: 4, a: { buffer: b, ld: 4, offset: 8 }, b: { buffer: b, ld: 4 }, c: { buffer: ctx.buffer('c', 64), ld: 4 } }))
      .toThrow(/matmul: A needs 24 elements but its buffer holds 16/);
  });

  it('AdamW: 3 steps over an arena (merged dispatch) and a separate no-decay tensor vs float64', async () => {
    const r = rng(11);
    const sizes = [300, 77], arenaN = 377, sepN = 50;
    const hp = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const p0 = randn(r, arenaN), s0 = randn(r, sepN);
    const P = ctx.upload('p', p0), M = ctx.upload('m', new Float32Array(arenaN)), V = ctx.upload('v', new Float32Array(arenaN));
    const S = ctx.upload('s', s0), SM = ctx.upload('sm', new Float32Array(sepN)), SV = ctx.upload('sv', new Float32Array(sepN));
    const ref = { p: Float64Array.from(p0), m: new Float64Array(arenaN), v: new Float64Array(arenaN), s: Float64Array.from(s0), sm: new Float64Array(sepN), sv: new Float64Array(sepN) };
    const refStep = (p: Float64Array, m: Float64Array, v: Float64Array, g: Float32Array, t: number, wd: number, scale: number) => {
      const c1 = 1 - hp.beta1 ** t, c2 = 1 - hp.beta2 ** t;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * scale;
        m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * gi;
        v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * gi * gi;
        p[i] -= hp.lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + hp.eps) + wd * p[i]);
      }
    };
    for (let t = 1; t <= 3; t++) {
      const g = randn(r, arenaN), gs = randn(r, sepN), scale = t === 2 ? 0.5 : 1;
      const G = ctx.upload('g', g), GS = ctx.upload('gs', gs);
      const dispatches = adamw(ctx, [
        { param: P, grad: G, m: M, v: V, size: sizes[0], offset: 0 },
        { param: P, grad: G, m: M, v: V, size: sizes[1], offset: sizes[0] },
        { param: S, grad: GS, m: SM, v: SV, size: sepN, noDecay: true },
      ], { step: t, ...hp, gradScale: scale });
      expect(dispatches).toBe(2);
      refStep(ref.p, ref.m, ref.v, g, t, hp.weightDecay, scale);
      refStep(ref.s, ref.sm, ref.sv, gs, t, 0, scale);
    }
    const errs = [relL2(await ctx.readF32(P, arenaN), ref.p), relL2(await ctx.readF32(M, arenaN), ref.m), relL2(await ctx.readF32(V, arenaN), ref.v),
      relL2(await ctx.readF32(S, sepN), ref.s), relL2(await ctx.readF32(SV, sepN), ref.sv)];
    console.info(`adamw p/m/v/sep p/sep v: ${errs.map((e) => e.toExponential(2)).join(' ')}`);
    for (const e of errs) expect(e).toBeLessThan(1e-5);
    expect(() => adamw(ctx, [{ param: P, grad: P, m: M, v: V, size: 1 }], { step: 1, lr: 1 })).toThrow(/four different buffers/);
  });
});
