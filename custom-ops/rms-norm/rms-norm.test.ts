import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { f32, finiteDiff, fusedModel, randn, relErr, rng, runOrt } from '../testing.js';
import { rmsNorm, rmsNormalization23 } from './function.js';
import { rmsNormGradRef, rmsNormRef } from './reference.js';

const F = DataType.FLOAT;

function inputs(seed: number, rows: number, d: number, scale = 1) {
  const r = rng(seed);
  return { x: randn(r, rows * d, scale), w: randn(r, d) };
}

describe('RMSNorm body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    for (const opset of [17, 20, 23])
      it(`${target} opset ${opset}`, async () => {
        for (const [seed, shape, eps, scale] of [[1, [2, 5, 64], 1e-6, 1], [2, [3, 7], 1e-5, 100], [3, [1, 1, 4, 896], 1e-6, 0.01]] as const) {
          const d = shape[shape.length - 1];
          const rows = shape.reduce((a, b) => a * b, 1) / d;
          const { x, w } = inputs(seed, rows, d, scale);
          const m = fusedModel(rmsNorm, [{ name: 'x', elem: F, shape: [...shape] }, { name: 'w', elem: F, shape: [d] }],
            { epsilon: { float: eps } }, target, { opset, irVersion: opset >= 23 ? 11 : 8, output: { name: 'y', elem: F, shape: [...shape] } });
          const out = await runOrt(m, { x: f32(x, [...shape]), w: f32(w, [d]) });
          expect(out.y.dims).toEqual([...shape]);
          expect(relErr(out.y.data as Float32Array, rmsNormRef(x, w, d, eps).y)).toBeLessThan(1e-5);
        }
      });

  it('epsilon is read from the node (a large epsilon changes the result)', async () => {
    const { x, w } = inputs(4, 4, 8, 0.1);
    const m = fusedModel(rmsNorm, [{ name: 'x', elem: F, shape: [4, 8] }, { name: 'w', elem: F, shape: [8] }], { epsilon: { float: 0.5 } }, 'cpu',
      { output: { name: 'y', elem: F, shape: [4, 8] } });
    const y = (await runOrt(m, { x: f32(x, [4, 8]), w: f32(w, [8]) })).y.data as Float32Array;
    expect(relErr(y, rmsNormRef(x, w, 8, 0.5).y)).toBeLessThan(1e-5);
    expect(relErr(y, rmsNormRef(x, w, 8, 1e-6).y)).toBeGreaterThan(0.1);
  });

  it('stash_type DOUBLE computes in float64 and casts back', async () => {
    const { x, w } = inputs(5, 3, 16);
    const m = fusedModel(rmsNorm, [{ name: 'x', elem: F, shape: [3, 16] }, { name: 'w', elem: F, shape: [16] }],
      { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }, 'cpu', { output: { name: 'y', elem: F, shape: [3, 16] } });
    const y = (await runOrt(m, { x: f32(x, [3, 16]), w: f32(w, [16]) })).y.data as Float32Array;
    expect(relErr(y, rmsNormRef(x, w, 16, 1e-6).y)).toBeLessThan(1e-6);
  });

  it('ONNX RMSNormalization-23 on onnxruntime-node CPU gives the same', async () => {
    const { x, w } = inputs(6, 10, 32);
    const m = createModel({ opset: 23, irVersion: 11 });
    const b = new GraphBuilder(m.graph);
    const y = rmsNormalization23(b, b.input('x', F, [10, 32]), b.input('w', F, [32]), 1e-6);
    b.output(y, 'y');
    const out = await runOrt(m, { x: f32(x, [10, 32]), w: f32(w, [32]) });
    expect(relErr(out.y.data as Float32Array, rmsNormRef(x, w, 32, 1e-6).y)).toBeLessThan(1e-5);
  });

  it('validator: weight must match the last dim, element types must agree, stash_type FLOAT or DOUBLE', () => {
    const node = (xs: number[], ws: number[], we = F, attrs = {}) => {
      const m = createModel();
      const g = new GraphBuilder(m.graph);
      g.op.call('RMSNorm', [g.input('x', F, xs), g.input('w', we, ws)], attrs, { domain: ORTFUSE_DOMAIN, name: 'norm' });
      return m.graph.nodes[0];
    };
    expect(validateNode(rmsNorm.schema, node([2, 8, 64], [64]))[0].shape).toEqual([2, 8, 64]);
    expect(() => validateNode(rmsNorm.schema, node([2, 8, 64], [32]))).toThrow(
      "node 'norm' (ai.ortfuse::RMSNorm): weight [32] does not match the last dim of x: 64 vs 32");
    expect(() => validateNode(rmsNorm.schema, node([2, 64], [64], DataType.FLOAT16))).toThrow(/'x' \(FLOAT\) and 'weight' \(FLOAT16\)/);
    expect(() => validateNode(rmsNorm.schema, node([2, 64], [64], F, { stash_type: 7 }))).toThrow(/stash_type=7/);
    expect(() => validateNode(rmsNorm.schema, node([2, 64], [64], F, { axis: 0 }))).toThrow(/unknown attribute 'axis'/);
  });
});

describe('RMSNorm float64 reference', () => {
  it('dx and dweight match finite differences', () => {
    const d = 6;
    const r = rng(9);
    const x = Float64Array.from(randn(r, 3 * d));
    const w = Float64Array.from(randn(r, d));
    const dy = Float64Array.from(randn(r, 3 * d));
    const f = () => rmsNormRef(x, w, d, 1e-3).y.reduce((s, v, i) => s + v * dy[i], 0);
    const g = rmsNormGradRef(x, w, dy, d, 1e-3);
    const ix = [0, 4, 7, 17];
    finiteDiff(f, x, ix).forEach((v, k) => expect(g.dx[ix[k]]).toBeCloseTo(v, 6));
    const iw = [0, 3, 5];
    finiteDiff(f, w, iw).forEach((v, k) => expect(g.dWeight[iw[k]]).toBeCloseTo(v, 6));
  });
});
