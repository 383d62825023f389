import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/schema.js';
import { validateNode, type Target } from '../../src/fused/types.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, fusedModel, randn, relErr, rng, runOrt } from '../testing.js';
import { gradCheck } from '../../test/autodiff-util.js';
import { ensureFunctions } from '../index.js';
import { swigluMlp, swigluMlpKeep } from './function.js';
import { swigluMlpGradOp, swigluMlpKeepGradOp } from './grad-function.js';
import { swigluMlpGradRef, swigluMlpProjectionsRef, swigluMlpRef } from './reference.js';

const F = DataType.FLOAT;

// [leading dims], H, I, weight scale: a 3-D batch, odd sizes, rank-1 x, gates far into saturation.
const CASES = [[1, [2, 5], 16, 48, 0.3], [2, [7], 24, 40, 1], [3, [], 8, 12, 3], [4, [3, 1], 5, 9, 2]] as const;

describe('SwiGLUMLP, SwiGLUMLPKeep and their backward bodies vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      for (const [seed, lead, h, i, scale] of CASES) {
        const m = lead.reduce((a, b) => a * b, 1);
        const r = rng(seed);
        const x = randn(r, m * h), wg = randn(r, i * h, scale), wu = randn(r, i * h, scale), wd = randn(r, h * i, scale), dy = randn(r, m * h);
        const xd = [...lead, h];
        const io = [{ name: 'x', elem: F, shape: xd }, { name: 'wg', elem: F, shape: [i, h] }, { name: 'wu', elem: F, shape: [i, h] }, { name: 'wd', elem: F, shape: [h, i] }];
        const feeds = { x: f32(x, xd), wg: f32(wg, [i, h]), wu: f32(wu, [i, h]), wd: f32(wd, [h, i]) };
        const fm = fusedModel(swigluMlp, io, {}, target, { output: { name: 'y', elem: F, shape: xd } });
        const y = (await runOrt(fm, feeds)).y;
        expect(y.dims).toEqual(xd);
        expect(relErr(y.data as Float32Array, swigluMlpRef(x, wg, wu, wd, { m, h, i })), `y ${lead} ${h} ${i}`).toBeLessThan(1e-5);

        const gm = fusedModelN(swigluMlpGradOp, [...io, { name: 'dy', elem: F, shape: xd }], {}, target,
          ['dx', 'dwg', 'dwu', 'dwd'].map((name, k) => ({ name, elem: F, shape: k === 0 ? xd : k === 3 ? [h, i] : [i, h] })));
        const out = await runOrt(gm, { ...feeds, dy: f32(dy, xd) });
        const ref = swigluMlpGradRef(x, wg, wu, wd, dy, { m, h, i });
        expect([out.dx.dims, out.dwg.dims, out.dwu.dims, out.dwd.dims]).toEqual([xd, [i, h], [i, h], [h, i]]);
        for (const [name, want] of [['dx', ref.dx], ['dwg', ref.dwGate], ['dwu', ref.dwUp], ['dwd', ref.dwDown]] as const)
          expect(relErr(out[name].data as Float32Array, want), `${name} ${lead} ${h} ${i}`).toBeLessThan(1e-5);

        // The saving form: g and u out of the forward, into the backward.
        const gud = [...lead, i];
        const proj = swigluMlpProjectionsRef(x, wg, wu, { m, h, i });
        const km = fusedModelN(swigluMlpKeep, io, {}, target, [{ name: 'y', elem: F, shape: xd }, { name: 'g', elem: F, shape: gud }, { name: 'u', elem: F, shape: gud }]);
        const kept = await runOrt(km, feeds);
        expect([kept.y.dims, kept.g.dims, kept.u.dims]).toEqual([xd, gud, gud]);
        expect(relErr(kept.y.data as Float32Array, swigluMlpRef(x, wg, wu, wd, { m, h, i })), `keep y ${lead} ${h} ${i}`).toBeLessThan(1e-5);
        expect(relErr(kept.g.data as Float32Array, proj.g), `keep g ${lead} ${h} ${i}`).toBeLessThan(1e-5);
        expect(relErr(kept.u.data as Float32Array, proj.u), `keep u ${lead} ${h} ${i}`).toBeLessThan(1e-5);
        const kg = fusedModelN(swigluMlpKeepGradOp, [...io, { name: 'dy', elem: F, shape: xd }, { name: 'g', elem: F, shape: gud }, { name: 'u', elem: F, shape: gud }], {}, target,
          ['dx', 'dwg', 'dwu', 'dwd'].map((name, k) => ({ name, elem: F, shape: k === 0 ? xd : k === 3 ? [h, i] : [i, h] })));
        const kout = await runOrt(kg, { ...feeds, dy: f32(dy, xd), g: f32(Float32Array.from(proj.g), gud), u: f32(Float32Array.from(proj.u), gud) });
        for (const [name, want] of [['dx', ref.dx], ['dwg', ref.dwGate], ['dwu', ref.dwUp], ['dwd', ref.dwDown]] as const)
          expect(relErr(kout[name].data as Float32Array, want), `keep ${name} ${lead} ${h} ${i}`).toBeLessThan(1e-5);
      }
    });

  it('validators: shapes and types of x and the three weights, dy as x', () => {
    const io = (xs: (number | string)[], g: number[], u: number[], d: number[], elem = F) =>
      [{ name: 'x', elem, shape: xs }, { name: 'wg', elem: F, shape: g }, { name: 'wu', elem: F, shape: u }, { name: 'wd', elem: F, shape: d }];
    const fwd = (...a: Parameters<typeof io>) => validateNode(swigluMlp.schema, lonelyNode(swigluMlp, 'mlp', io(...a)));
    expect(fwd(['B', 'S', 8], [20, 8], [20, 8], [8, 20])[0].shape).toEqual(['B', 'S', 8]);
    expect(() => fwd(['B', 8], [20, 8], [20, 8], [8, 21])).toThrow(
      "node 'mlp' (ai.ortfuse::SwiGLUMLP): intermediate size I differs (x [B,8], w_gate [20,8], w_up [20,8], w_down [8,21]; expected [..., H], [I, H], [I, H], [H, I]): 20 vs 21");
    expect(() => fwd(['B', 7], [20, 8], [20, 8], [8, 20])).toThrow(/hidden size H differs .*: 7 vs 8/);
    expect(() => fwd(['B', 8], [20, 8], [8, 20], [8, 20])).toThrow(/hidden size H differs|intermediate size I differs/);
    expect(() => fwd(['B', 8], [20, 8, 1], [20, 8], [8, 20])).toThrow(/input 'w_gate' has shape \[20,8,1\], expected rank 2/);
    expect(() => fwd(['B', 8], [20, 8], [20, 8], [8, 20], DataType.FLOAT16)).toThrow(/'x' \(FLOAT16\) and 'w_gate' \(FLOAT\)/);
    const grad = (dys: number[]) => validateNode(swigluMlpGradOp.schema, lonelyNode(swigluMlpGradOp, 'mlp_grad',
      [...io([2, 3, 8], [20, 8], [20, 8], [8, 20]), { name: 'dy', elem: F, shape: dys }]));
    expect(grad([2, 3, 8]).map((t) => t.shape)).toEqual([[2, 3, 8], [20, 8], [20, 8], [8, 20]]);
    expect(() => grad([2, 4, 8])).toThrow("node 'mlp_grad' (ai.ortfuse::SwiGLUMLPGrad): 'dy' [2,4,8] and 'x' [2,3,8] differ at axis 1: 4 vs 3");

    const keep = validateNode(swigluMlpKeep.schema, lonelyNode(swigluMlpKeep, 'mlp', io(['B', 'S', 8], [20, 8], [20, 8], [8, 20])));
    expect(keep.map((t) => t.shape)).toEqual([['B', 'S', 8], ['B', 'S', 20], ['B', 'S', 20]]);
    const keepGrad = (gs: number[], us = gs) => validateNode(swigluMlpKeepGradOp.schema, lonelyNode(swigluMlpKeepGradOp, 'mlp_grad',
      [...io([2, 3, 8], [20, 8], [20, 8], [8, 20]), { name: 'dy', elem: F, shape: [2, 3, 8] }, { name: 'g', elem: F, shape: gs }, { name: 'u', elem: F, shape: us }]));
    expect(keepGrad([2, 3, 20]).map((t) => t.shape)).toEqual([[2, 3, 8], [20, 8], [20, 8], [8, 20]]);
    expect(() => keepGrad([2, 3, 8])).toThrow("node 'mlp_grad' (ai.ortfuse::SwiGLUMLPKeepGrad): 'g' [2,3,8] and 'x's [..., I]' [2,3,20] differ at axis 2: 8 vs 20");
    expect(() => keepGrad([2, 3, 20], [6, 20])).toThrow(/'u' \[6,20\] and 'x's \[\.\.\., I\]' \[2,3,20\] must have the same shape/);
  });

  it('the saving backward body reads g and u: two MatMuls fewer than the recomputing one', () => {
    const matmuls = (op: typeof swigluMlpGradOp, extra: number) => {
      const m = fusedModelN(op, [{ name: 'x', elem: F, shape: [3, 4] }, { name: 'wg', elem: F, shape: [6, 4] }, { name: 'wu', elem: F, shape: [6, 4] },
        { name: 'wd', elem: F, shape: [4, 6] }, { name: 'dy', elem: F, shape: [3, 4] }, ...[...Array(extra)].map((_, k) => ({ name: `s${k}`, elem: F, shape: [3, 6] }))], {}, 'cpu',
      [[3, 4], [6, 4], [6, 4], [4, 6]].map((shape, k) => ({ name: `d${k}`, elem: F, shape })));
      return m.functions[0].body.nodes.filter((n) => n.opType === 'MatMul').length;
    };
    expect(matmuls(swigluMlpGradOp, 0)).toBe(5);
    expect(matmuls(swigluMlpKeepGradOp, 2)).toBe(3);
  });
});

describe('SwiGLUMLP gradient rule vs finite differences (float64)', () => {
  const prepare = (m: Parameters<typeof ensureFunctions>[0]) => void ensureFunctions(m, 'cpu');
  const mlp = (b: Parameters<Parameters<typeof gradCheck>[1]>[0], xs: Parameters<Parameters<typeof gradCheck>[1]>[1]) =>
    b.op.call('SwiGLUMLP', xs, {}, { domain: 'ai.ortfuse' })[0];
  const fusedOps = (m: Awaited<ReturnType<typeof gradCheck>>['model']) => m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType).sort();

  // Default: the forward is swapped for SwiGLUMLPKeep, whose g and u SwiGLUMLPKeepGrad reads;
  // without in-forward hooks, the recomputing form SwiGLUMLPGrad, which reads x and no activation else.
  for (const inForward of [true, false])
    it(`every input, symbolic batch (${inForward ? 'SwiGLUMLPKeepGrad' : 'SwiGLUMLPGrad'}, nothing else fused)`, async () => {
      const r = await gradCheck([
        { name: 'x', dims: [2, 3, 4], decl: ['B', 'S', 4], lo: -2, hi: 2 },
        { name: 'wg', dims: [6, 4], lo: -1.5, hi: 1.5 }, { name: 'wu', dims: [6, 4] }, { name: 'wd', dims: [4, 6] },
      ], mlp, { prepare, inForward });
      for (const n of ['x', 'wg', 'wu', 'wd']) {
        expect(r.scale[n]).toBeGreaterThan(1e-3);
        expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
      }
      const [fwd, bwd] = inForward ? ['SwiGLUMLPKeep', 'SwiGLUMLPKeepGrad'] : ['SwiGLUMLP', 'SwiGLUMLPGrad'];
      expect(fusedOps(r.model)).toEqual([fwd, bwd]);
      const gradNode = r.model.graph.nodes.find((n) => n.opType === bwd)!;
      const fwdNode = r.model.graph.nodes.find((n) => n.opType === fwd)!;
      expect(gradNode.inputs.slice(0, 4).map((v) => v!.name)).toEqual(['x', 'wg', 'wu', 'wd']);
      expect(gradNode.inputs.slice(5)).toEqual(inForward ? fwdNode.outputs.slice(1) : []);
      expect(fwdNode.outputs.length).toBe(inForward ? 3 : 1);
    });

  it('frozen gate and down weights (dx and dw_up only), rank-2 x', async () => {
    const r = await gradCheck([
      { name: 'x', dims: [5, 3] }, { name: 'wg', dims: [7, 3], wrt: false }, { name: 'wu', dims: [7, 3] }, { name: 'wd', dims: [3, 7], wrt: false },
    ], mlp, { prepare });
    expect(Object.keys(r.errors).sort()).toEqual(['wu', 'x']);
    for (const n of ['x', 'wu']) expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
    expect(fusedOps(r.model)).toEqual(['SwiGLUMLPKeep', 'SwiGLUMLPKeepGrad']);
  });
});
