import { FUSED_INFER_RULES } from '../registry.js';
import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { inferShapes } from '../../src/ir/infer/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, randn, relErr, rng, runOrt } from '../testing.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { ropeGradOp } from './grad-function.js';
import { ropeGradRef, type RopeShape } from './reference.js';

const F = DataType.FLOAT;

// Odd head, row and batch counts; cos/sin shared by the batch (bc 1) or per batch (bc = b).
const SHAPES: RopeShape[] = [
  { b: 2, heads: 3, s: 5, d: 8, bc: 1 }, { b: 3, heads: 2, s: 7, d: 64, bc: 3 }, { b: 1, heads: 14, s: 1, d: 64, bc: 1 }, { b: 1, heads: 1, s: 9, d: 2, bc: 1 },
];

describe('RoPEGrad body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      for (const [k, sh] of SHAPES.entries()) {
        const r = rng(k + 20);
        const xd = [sh.b, sh.heads, sh.s, sh.d];
        const cd = [sh.bc, 1, sh.s, sh.d];
        const dy = randn(r, sh.b * sh.heads * sh.s * sh.d);
        // Arbitrary cos/sin (the op does not rely on repeated halves or cos² + sin² = 1).
        const cos = randn(r, sh.bc * sh.s * sh.d);
        const sin = randn(r, sh.bc * sh.s * sh.d);
        const m = fusedModelN(ropeGradOp, [{ name: 'dy', elem: F, shape: xd }, { name: 'cos', elem: F, shape: cd }, { name: 'sin', elem: F, shape: cd }], {},
          target, [{ name: 'dx', elem: F, shape: xd }]);
        const out = await runOrt(m, { dy: f32(dy, xd), cos: f32(cos, cd), sin: f32(sin, cd) });
        expect(out.dx.dims).toEqual(xd);
        expect(relErr(out.dx.data as Float32Array, ropeGradRef(dy, cos, sin, sh)), JSON.stringify(sh)).toBeLessThan(1e-5);
      }
    });

  it('validator: as RoPE, naming dy', () => {
    const node = (dys: number[], cs: number[]) =>
      lonelyNode(ropeGradOp, 'rope_q_grad', [{ name: 'dy', elem: F, shape: dys }, { name: 'c', elem: F, shape: cs }, { name: 's', elem: F, shape: cs }]);
    expect(validateNode(ropeGradOp.schema, node([2, 14, 16, 64], [1, 1, 16, 64]))[0].shape).toEqual([2, 14, 16, 64]);
    expect(() => validateNode(ropeGradOp.schema, node([2, 14, 16, 64], [1, 1, 16, 32]))).toThrow(
      "node 'rope_q_grad' (ai.ortfuse::RoPEGrad): cos [1,1,16,32] does not broadcast to dy [2,14,16,64] at axis 3: 64 vs 32");
    expect(() => validateNode(ropeGradOp.schema, node([2, 14, 16, 63], [1, 1, 16, 63]))).toThrow(/dy \[2,14,16,63\] has an odd last dim/);
    expect(() => validateNode(ropeGradOp.schema, node([2, 14, 16, 64], [1, 14, 16, 64]))).toThrow(/must have 1 at axis 1/);
    expect(() => validateNode(ropeGradOp.schema, node([14, 16, 64], [1, 16, 64]))).toThrow(/input 'dy' has shape \[14,16,64\], expected rank 4/);
  });

  it('shape inference: dx has dy shape, refined by cos', () => {
    const m = createModel({ opsets: { [ORTFUSE_DOMAIN]: 1 } });
    const b = new GraphBuilder(m.graph);
    const [dx] = b.op.call('RoPEGrad', [b.input('dy', F, ['B', 14, null, 64]), b.input('c', F, [1, 1, 'S', 64]), b.input('s', F, [1, 1, 'S', 64])], {},
      { domain: ORTFUSE_DOMAIN });
    inferShapes(m, { rules: FUSED_INFER_RULES });
    expect(dx.tensorType).toMatchObject({ elemType: F, shape: ['B', 14, 'S', 64] });
  });
});
