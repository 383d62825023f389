import { FUSED_INFER_RULES } from '../registry.js';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { inferShapes } from '../../src/ir/infer/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, randn, relErr, rng, runOrt } from '../testing.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { rmsNormGradOp } from './grad-function.js';
import { rmsNormGradRef } from './reference.js';

const F = DataType.FLOAT;

/** Run RMSNormGrad's body on seeded data and compare dx, dweight with the float64 reference. */
async function check(target: Target, opset: number, seed: number, shape: number[], eps: number, scale: number, stash = F, elem = F) {
  const d = shape[shape.length - 1];
  const n = shape.reduce((a, b) => a * b, 1);
  const r = rng(seed);
  const x = randn(r, n, scale);
  const w = randn(r, d);
  const dy = randn(r, n);
  const m = fusedModelN(rmsNormGradOp, [{ name: 'dy', elem, shape }, { name: 'x', elem, shape }, { name: 'w', elem, shape: [d] }],
    { epsilon: { float: eps }, stash_type: stash }, target, [{ name: 'dx', elem, shape }, { name: 'dw', elem, shape: [d] }], opset);
  const t = (v: Float32Array, dims: number[]) => (elem === F ? f32(v, dims) : new ort.Tensor('float64', Float64Array.from(v), dims));
  const out = await runOrt(m, { dy: t(dy, shape), x: t(x, shape), w: t(w, [d]) });
  const ref = rmsNormGradRef(x, w, dy, d, Math.fround(eps));
  expect(out.dx.dims).toEqual(shape);
  expect(out.dw.dims).toEqual([d]);
  return { dx: relErr(out.dx.data as Float32Array, ref.dx), dw: relErr(out.dw.data as Float32Array, ref.dWeight) };
}

// Row counts 15, 3, 1, 7 (odd), 10; ranks 1 to 4; D from 4 to 896.
const CASES = [[1, [3, 5, 64], 1e-6, 1], [2, [3, 7], 1e-5, 100], [3, [1, 1, 1, 896], 1e-6, 0.01], [4, [7, 1, 4], 0.5, 0.1], [5, [10, 33], 1e-6, 3], [6, [24], 1e-6, 1]] as const;

describe('RMSNormGrad body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    for (const opset of [17, 20, 23])
      it(`${target} opset ${opset}`, async () => {
        for (const [seed, shape, eps, scale] of CASES) {
          const e = await check(target, opset, seed, [...shape], eps, scale);
          expect(e.dx, `dx ${shape}`).toBeLessThan(1e-5);
          expect(e.dw, `dweight ${shape}`).toBeLessThan(1e-5);
        }
      });

  it('epsilon is read from the node (small inputs: 0.5 vs 1e-6 differ)', async () => {
    const e = await check('cpu', 20, 7, [5, 8], 0.5, 0.1);
    expect(e.dx).toBeLessThan(1e-5);
    // The same data against the reference with another epsilon: far off.
    const r = rng(7);
    const x = randn(r, 40, 0.1);
    const w = randn(r, 8);
    const dy = randn(r, 40);
    expect(relErr(rmsNormGradRef(x, w, dy, 8, 0.5).dx, rmsNormGradRef(x, w, dy, 8, 1e-6).dx)).toBeGreaterThan(0.1);
  });

  it('stash_type is the computation type: float64 inputs keep float64 accuracy only with stash DOUBLE', async () => {
    const D = DataType.DOUBLE;
    const exact = await check('cpu', 20, 8, [9, 257], 1e-6, 1, D, D);
    expect(exact.dx).toBeLessThan(1e-12);
    expect(exact.dw).toBeLessThan(1e-12);
    const single = await check('cpu', 20, 8, [9, 257], 1e-6, 1, F, D);
    expect(single.dx).toBeGreaterThan(1e-9);
    expect(single.dx).toBeLessThan(1e-5);
    expect(single.dw).toBeGreaterThan(1e-9);
    // float32 inputs, float64 computation
    const e = await check('cpu', 20, 8, [9, 257], 1e-6, 1, D);
    expect(e.dx).toBeLessThan(1e-6);
  });

  it('validator: dy must have x shape and type, weight the last dim; attributes as RMSNorm', () => {
    const io = (dys: number[], xs: number[], ws: number[], dye = F) =>
      [{ name: 'dy', elem: dye, shape: dys }, { name: 'x', elem: F, shape: xs }, { name: 'w', elem: F, shape: ws }];
    const node = (dys: number[], xs: number[], ws: number[], attrs = {}, dye = F) => lonelyNode(rmsNormGradOp, 'norm_grad', io(dys, xs, ws, dye), attrs);
    const ok = validateNode(rmsNormGradOp.schema, node([2, 8, 64], [2, 8, 64], [64]));
    expect(ok.map((t) => t.shape)).toEqual([[2, 8, 64], [64]]);
    expect(() => validateNode(rmsNormGradOp.schema, node([2, 8, 64], [2, 8, 64], [32]))).toThrow(
      "node 'norm_grad' (ai.ortfuse::RMSNormGrad): weight [32] does not match the last dim of x: 64 vs 32");
    expect(() => validateNode(rmsNormGradOp.schema, node([2, 9, 64], [2, 8, 64], [64]))).toThrow(
      "node 'norm_grad' (ai.ortfuse::RMSNormGrad): 'dy' [2,9,64] and 'x' [2,8,64] differ at axis 1: 9 vs 8");
    expect(() => validateNode(rmsNormGradOp.schema, node([16, 64], [2, 8, 64], [64]))).toThrow(/'dy' \[16,64\] and 'x' \[2,8,64\] must have the same shape/);
    expect(() => validateNode(rmsNormGradOp.schema, node([2, 64], [2, 64], [64], {}, DataType.DOUBLE))).toThrow(/'dy' \(DOUBLE\) and 'x' \(FLOAT\)/);
    expect(() => validateNode(rmsNormGradOp.schema, node([2, 64], [2, 64], [64], { stash_type: 7 }))).toThrow(/RMSNormGrad\): stash_type=7/);
    expect(() => validateNode(rmsNormGradOp.schema, node([2, 64], [2, 64], [64], { axis: 0 }))).toThrow(/unknown attribute 'axis'/);
  });

  it('shape inference: symbolic dims, dx like x, dweight like weight', () => {
    const m = createModel({ opsets: { [ORTFUSE_DOMAIN]: 1 } });
    const b = new GraphBuilder(m.graph);
    const [dx, dw] = b.op.call('RMSNormGrad', [b.input('dy', F, ['B', null, 64]), b.input('x', F, ['B', 'S', null]), b.input('w', F, [64])], {},
      { domain: ORTFUSE_DOMAIN, outputs: 2 });
    inferShapes(m, { rules: FUSED_INFER_RULES });
    expect(dx.tensorType).toMatchObject({ elemType: F, shape: ['B', 'S', 64] });
    expect(dw.tensorType).toMatchObject({ elemType: F, shape: [64] });
  });
});
