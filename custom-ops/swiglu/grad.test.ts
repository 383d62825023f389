import { FUSED_INFER_RULES } from '../registry.js';
import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { inferShapes } from '../../src/ir/infer/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, randn, relErr, rng, runOrt } from '../testing.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { swigluGradOp } from './grad-function.js';
import { swigluGradRef } from './reference.js';

const F = DataType.FLOAT;

describe('SwiGLUGrad body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      // 10, 7 (odd), 1 and 3 rows; gate up to ±8σ and ±30σ (saturated sigmoid on both sides)
      for (const [seed, shape, scale] of [[1, [2, 5, 48], 1], [2, [7, 4864], 8], [3, [3], 30], [4, [3, 1, 5], 2]] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const r = rng(seed);
        const g = randn(r, n, scale);
        const u = randn(r, n);
        const dy = randn(r, n);
        const dims = [...shape];
        const m = fusedModelN(swigluGradOp, ['dy', 'g', 'u'].map((name) => ({ name, elem: F, shape: dims })), {}, target,
          ['dg', 'du'].map((name) => ({ name, elem: F, shape: dims })));
        const out = await runOrt(m, { dy: f32(dy, dims), g: f32(g, dims), u: f32(u, dims) });
        const ref = swigluGradRef(g, u, dy);
        expect(out.dg.dims).toEqual(dims);
        expect(relErr(out.dg.data as Float32Array, ref.dGate), `dgate ${shape}`).toBeLessThan(1e-5);
        expect(relErr(out.du.data as Float32Array, ref.dUp), `dup ${shape}`).toBeLessThan(1e-5);
      }
    });

  it('validator: dy, gate and up share shape and type', () => {
    const node = (dys: number[], gs: number[], us: number[], dye = F) =>
      lonelyNode(swigluGradOp, 'act_grad', [{ name: 'dy', elem: dye, shape: dys }, { name: 'g', elem: F, shape: gs }, { name: 'u', elem: F, shape: us }]);
    expect(validateNode(swigluGradOp.schema, node([2, 16], [2, 16], [2, 16])).map((t) => t.shape)).toEqual([[2, 16], [2, 16]]);
    expect(() => validateNode(swigluGradOp.schema, node([2, 16], [2, 16], [2, 8]))).toThrow(
      "node 'act_grad' (ai.ortfuse::SwiGLUGrad): gate [2,16] and up [2,8] differ at axis 1: 16 vs 8");
    expect(() => validateNode(swigluGradOp.schema, node([3, 16], [2, 16], [2, 16]))).toThrow(
      "node 'act_grad' (ai.ortfuse::SwiGLUGrad): 'dy' [3,16] and 'gate' [2,16] differ at axis 0: 3 vs 2");
    expect(() => validateNode(swigluGradOp.schema, node([32], [2, 16], [2, 16]))).toThrow(/'dy' \[32\] and 'gate' \[2,16\] must have the same shape/);
    expect(() => validateNode(swigluGradOp.schema, node([2, 16], [2, 16], [2, 16], DataType.FLOAT16))).toThrow(/'dy' \(FLOAT16\) and 'gate' \(FLOAT\)/);
  });

  it('shape inference: symbolic dims from either input', () => {
    const m = createModel({ opsets: { [ORTFUSE_DOMAIN]: 1 } });
    const b = new GraphBuilder(m.graph);
    const [dg, du] = b.op.call('SwiGLUGrad', [b.input('dy', F, ['B', null, 64]), b.input('g', F, [null, 'S', 64]), b.input('u', F, ['B', 'S', null])], {},
      { domain: ORTFUSE_DOMAIN, outputs: 2 });
    inferShapes(m, { rules: FUSED_INFER_RULES });
    expect(dg.tensorType).toMatchObject({ elemType: F, shape: ['B', 'S', 64] });
    expect(du.tensorType).toMatchObject({ elemType: F, shape: ['B', 'S', 64] });
  });
});
