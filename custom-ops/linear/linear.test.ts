import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/schema.js';
import { checkModel, createModel, GraphBuilder } from '../../src/ir/index.js';
import { validateNode, type Target } from '../../src/fused/types.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, fusedModel, randn, relErr, rng, runOrt } from '../testing.js';
import { gradCheck } from '../../test/autodiff-util.js';
import { ensureFunctions } from '../index.js';
import { linear, linearGradOp } from './function.js';
import { linearGradRef, linearRef } from './reference.js';
import type { Precision } from '../precision.js';

const F = DataType.FLOAT;

// seed, [leading dims], K, N, trans_b, bias: a 3-D batch, odd sizes, both layouts, with and without bias.
const CASES = [[1, [2, 5], 16, 24, 1, true], [2, [7], 24, 9, 0, true], [3, [3, 1, 2], 8, 12, 1, false], [4, [4], 5, 7, 0, false]] as const;

describe('Linear and LinearGrad bodies vs float64 reference (onnxruntime-node)', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    for (const precision of ['fp32', 'f16'] as Precision[])
      it(`${target}, precision ${precision}`, async () => {
        for (const [seed, lead, k, n, transB, hasBias] of CASES) {
          const m = (lead as readonly number[]).reduce((a, b) => a * b, 1);
          const r = rng(seed);
          const x = randn(r, m * k), w = randn(r, n * k, 0.5), bias = randn(r, n), dy = randn(r, m * n);
          const xd = [...lead, k], wd = transB ? [n, k] : [k, n], yd = [...lead, n];
          const attrs = { trans_b: transB, ...(precision === 'f16' ? { precision } : {}) };
          const s = { m, k, n, transB: !!transB, precision };
          const what = `${lead} K=${k} N=${n} trans_b=${transB} bias=${hasBias}`;
          const io = [{ name: 'x', elem: F, shape: xd }, { name: 'w', elem: F, shape: wd }];
          const fm = fusedModel(linear, [...io, hasBias ? { name: 'b', elem: F, shape: [n] } : null], attrs, target, { output: { name: 'y', elem: F, shape: yd } });
          const feeds = { x: f32(x, xd), w: f32(w, wd), ...(hasBias ? { b: f32(bias, [n]) } : {}) };
          const y = (await runOrt(fm, feeds)).y;
          expect(y.dims, what).toEqual(yd);
          expect(relErr(y.data as Float32Array, linearRef(x, w, hasBias ? bias : undefined, s)), `y ${what}`).toBeLessThan(1e-5);
          if (precision === 'f16') // the rounding is there: fp32 math is off by far more than 1e-5
            expect(relErr(y.data as Float32Array, linearRef(x, w, hasBias ? bias : undefined, { ...s, precision: 'fp32' })), `y ${what} vs fp32`).toBeGreaterThan(1e-4);

          const gm = fusedModelN(linearGradOp, [...io, { name: 'dy', elem: F, shape: yd }], attrs, target,
            [{ name: 'dx', elem: F, shape: xd }, { name: 'dw', elem: F, shape: wd }, { name: 'db', elem: F, shape: [n] }]);
          const out = await runOrt(gm, { x: feeds.x, w: feeds.w, dy: f32(dy, yd) });
          const ref = linearGradRef(x, w, dy, s);
          expect([out.dx.dims, out.dw.dims, out.db.dims]).toEqual([xd, wd, [n]]);
          for (const [name, want] of [['dx', ref.dx], ['dw', ref.dw], ['db', ref.db]] as const)
            expect(relErr(out[name].data as Float32Array, want), `${name} ${what}`).toBeLessThan(1e-5);
        }
      });

  for (const target of ['cpu', 'webgpu'] as Target[])
    it(`LinearGrad callers of both orientations in one model (${target} body): trans_b read at run time, both vs float64`, async () => {
      const io = (ws: number[]) => [{ name: 'x', elem: F, shape: [2, 3] }, { name: 'w', elem: F, shape: ws }, { name: 'dy', elem: F, shape: [2, 4] }];
      const nt = lonelyNode(linearGradOp, 'grad_t1', io([4, 3])), nn = lonelyNode(linearGradOp, 'grad_t0', io([3, 4]), { trans_b: 0 });
      expect(linearGradOp.bodyOptions!([nt, nt], target)).toEqual({});
      expect(linearGradOp.bodyOptions!([nn], target)).toEqual({ transB: 0 });
      expect(linearGradOp.bodyOptions!([nt, nn], target)).toEqual({ transB: 'node' });
      const [m, k, n] = [5, 6, 7];
      const mb = createModel({ opset: 20 });
      const b = new GraphBuilder(mb.graph);
      const x = b.input('x', F, ['R', 2, k]), dy = b.input('dy', F, ['R', 2, n]), wNK = b.input('w_nk', F, [n, k]), wKN = b.input('w_kn', F, [k, n]);
      const call = (w: typeof x, transB: number) => b.op.call('LinearGrad', [x, w, dy], { trans_b: transB }, { domain: 'ai.ortfuse', outputs: 3 });
      const [one, zero] = [call(wNK, 1), call(wKN, 0)];
      ['dx1', 'dw1', 'db1'].forEach((name, i) => b.output(one[i], name));
      ['dx0', 'dw0', 'db0'].forEach((name, i) => b.output(zero[i], name));
      ensureFunctions(mb, target);
      expect(checkModel(mb)).toEqual([]);
      expect(mb.functions.find((f) => f.name === 'LinearGrad')!.body.nodes.some((nd) => nd.opType === 'If')).toBe(true);
      const r = rng(9);
      const xv = randn(r, 2 * m * k), dyv = randn(r, 2 * m * n), wv = randn(r, n * k), wt = randn(r, n * k);
      const out = await runOrt(mb, { x: f32(xv, [m, 2, k]), dy: f32(dyv, [m, 2, n]), w_nk: f32(wv, [n, k]), w_kn: f32(wt, [k, n]) });
      const s = { m: 2 * m, k, n };
      const [r1, r0] = [linearGradRef(xv, wv, dyv, { ...s, transB: true }), linearGradRef(xv, wt, dyv, { ...s, transB: false })];
      expect([out.dx1.dims, out.dw1.dims, out.dx0.dims, out.dw0.dims]).toEqual([[m, 2, k], [n, k], [m, 2, k], [k, n]]);
      for (const [name, want] of [['dx1', r1.dx], ['dw1', r1.dw], ['db1', r1.db], ['dx0', r0.dx], ['dw0', r0.dw], ['db0', r0.db]] as const)
        expect(relErr(out[name].data as Float32Array, want), name).toBeLessThan(1e-5);
    });

  it('validators: shapes, types and attributes of x, w, bias and dy', () => {
    const io = (xs: (number | string)[], ws: number[], bs?: number[], elem: number = F) =>
      [{ name: 'x', elem, shape: xs }, { name: 'w', elem: F, shape: ws }, ...(bs ? [{ name: 'b', elem: F, shape: bs }] : [])];
    const fwd = (attrs: Record<string, number | string>, ...a: Parameters<typeof io>) => validateNode(linear.schema, lonelyNode(linear, 'proj', io(...a), attrs));
    expect(fwd({}, ['B', 'S', 8], [20, 8], [20])[0].shape).toEqual(['B', 'S', 20]);
    expect(fwd({ trans_b: 0 }, ['B', 'S', 8], [8, 20])[0].shape).toEqual(['B', 'S', 20]);
    expect(() => fwd({}, ['B', 7], [20, 8])).toThrow("node 'proj' (ai.ortfuse::Linear): x [B,7] and w [20,8] disagree on K (trans_b=1: w is [N, K]): 7 vs 8");
    expect(() => fwd({ trans_b: 0 }, ['B', 20], [20, 8], [20])).toThrow(/bias \[20\] and w \[20,8\] disagree on N: 8 vs 20/);
    expect(() => fwd({}, [8], [20, 8])).toThrow(/input 'x' has shape \[8\], expected rank >= 2/);
    expect(() => fwd({}, ['B', 8], [20, 8, 1])).toThrow(/input 'w' has shape \[20,8,1\], expected rank 2/);
    expect(() => fwd({}, ['B', 8], [20, 8], undefined, DataType.FLOAT16)).toThrow(/'x' \(FLOAT16\) and 'w' \(FLOAT\)/);
    expect(() => fwd({ trans_b: 2 }, ['B', 8], [20, 8])).toThrow(/attribute trans_b=2 must be 0 or 1/);
    expect(() => fwd({ precision: 'bf16' }, ['B', 8], [20, 8])).toThrow(/attribute precision='bf16' is not one of 'fp32', 'f16'/);
    const grad = (dys: number[]) => validateNode(linearGradOp.schema, lonelyNode(linearGradOp, 'proj_grad', [...io([2, 3, 8], [20, 8]), { name: 'dy', elem: F, shape: dys }]));
    expect(grad([2, 3, 20]).map((t) => t.shape)).toEqual([[2, 3, 8], [20, 8], [20]]);
    expect(() => grad([2, 3, 8])).toThrow("node 'proj_grad' (ai.ortfuse::LinearGrad): 'dy' [2,3,8] and 'x's [..., N]' [2,3,20] differ at axis 2: 8 vs 20");
  });
});

describe('Linear gradient rule vs finite differences (float64)', () => {
  const prepare = (m: Parameters<typeof ensureFunctions>[0]) => void ensureFunctions(m, 'cpu');
  const call = (attrs: Record<string, number>) => (b: Parameters<Parameters<typeof gradCheck>[1]>[0], xs: Parameters<Parameters<typeof gradCheck>[1]>[1]) =>
    b.op.call('Linear', xs, attrs, { domain: 'ai.ortfuse' })[0];
  const fusedOps = (m: Awaited<ReturnType<typeof gradCheck>>['model']) => m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType).sort();

  for (const transB of [1, 0])
    it(`x, w and bias, symbolic batch, trans_b=${transB}`, async () => {
      const r = await gradCheck([
        { name: 'x', dims: [2, 3, 4], decl: ['B', 'S', 4], lo: -2, hi: 2 },
        { name: 'w', dims: transB ? [5, 4] : [4, 5] }, { name: 'b', dims: [5] },
      ], call({ trans_b: transB }), { prepare });
      for (const n of ['x', 'w', 'b']) {
        expect(r.scale[n]).toBeGreaterThan(1e-3);
        expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
      }
      expect(fusedOps(r.model)).toEqual(['Linear', 'LinearGrad']);
      const g = r.model.graph.nodes.find((n) => n.opType === 'LinearGrad')!;
      expect([g.inputs.slice(0, 2).map((v) => v!.name), g.attrInt('trans_b', 1)]).toEqual([['x', 'w'], transB]);
    });

  it('frozen weight, no bias: dx only (dw and db are outputs nothing reads)', async () => {
    const r = await gradCheck([{ name: 'x', dims: [5, 3] }, { name: 'w', dims: [7, 3], wrt: false }], call({}), { prepare });
    expect(Object.keys(r.errors)).toEqual(['x']);
    expect(r.errors.x).toBeLessThan(1e-6);
    const g = r.model.graph.nodes.find((n) => n.opType === 'LinearGrad')!;
    expect(g.outputs.slice(1).map((o) => o.uses().length)).toEqual([0, 0]);
  });
});
