import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { f32, finiteDiff, fusedModel, randn, relErr, rng, runOrt } from '../testing.js';
import { rope, rotaryCaches, rotaryEmbedding23 } from './function.js';
import { ropeGradRef, ropeRef, type RopeShape } from './reference.js';

const F = DataType.FLOAT;

/** HF-style cos/sin [bc, 1, S, D]: angles pos·θ_j with the two halves repeated. */
function cosSin(sh: RopeShape, offset = 0) {
  const { bc, s, d } = sh;
  const cos = new Float32Array(bc * s * d);
  const sin = new Float32Array(bc * s * d);
  for (let b = 0; b < bc; b++)
    for (let p = 0; p < s; p++)
      for (let j = 0; j < d; j++) {
        const ang = (p + offset + 3 * b) * Math.pow(10000, -(2 * (j % (d / 2))) / d);
        cos[(b * s + p) * d + j] = Math.cos(ang);
        sin[(b * s + p) * d + j] = Math.sin(ang);
      }
  return { cos, sin };
}

const SHAPES: RopeShape[] = [{ b: 2, heads: 3, s: 5, d: 8, bc: 1 }, { b: 2, heads: 2, s: 7, d: 64, bc: 2 }, { b: 1, heads: 14, s: 4, d: 64, bc: 1 }];

describe('RoPE body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      for (const [k, sh] of SHAPES.entries()) {
        const x = randn(rng(k + 1), sh.b * sh.heads * sh.s * sh.d);
        const { cos, sin } = cosSin(sh, k);
        const xd = [sh.b, sh.heads, sh.s, sh.d];
        const cd = [sh.bc, 1, sh.s, sh.d];
        const m = fusedModel(rope, [{ name: 'x', elem: F, shape: xd }, { name: 'cos', elem: F, shape: cd }, { name: 'sin', elem: F, shape: cd }], {},
          target, { output: { name: 'y', elem: F, shape: xd } });
        const out = await runOrt(m, { x: f32(x, xd), cos: f32(cos, cd), sin: f32(sin, cd) });
        expect(relErr(out.y.data as Float32Array, ropeRef(x, cos, sin, sh))).toBeLessThan(1e-5);
      }
    });

  it('ONNX RotaryEmbedding-23 (interleaved=0, caches = cos[..., :D/2]) expresses the same on onnxruntime-node CPU', async () => {
    for (const [k, sh] of SHAPES.entries()) {
      const x = randn(rng(k + 10), sh.b * sh.heads * sh.s * sh.d);
      const { cos, sin } = cosSin(sh, k);
      const xd = [sh.b, sh.heads, sh.s, sh.d];
      const cd = [sh.bc, 1, sh.s, sh.d];
      const m = createModel({ opset: 23, irVersion: 11 });
      const b = new GraphBuilder(m.graph);
      const xv = b.input('x', F, xd);
      const [cc, sc] = rotaryCaches(b, xv, b.input('cos', F, cd), b.input('sin', F, cd));
      b.output(rotaryEmbedding23(b, xv, cc, sc), 'y');
      const out = await runOrt(m, { x: f32(x, xd), cos: f32(cos, cd), sin: f32(sin, cd) });
      expect(relErr(out.y.data as Float32Array, ropeRef(x, cos, sin, sh))).toBeLessThan(1e-5);
    }
  });

  it('validator: rank 4, even D, cos broadcast over heads', () => {
    const node = (xs: number[], cs: number[]) => {
      const m = createModel();
      const b = new GraphBuilder(m.graph);
      b.op.call('RoPE', [b.input('x', F, xs), b.input('c', F, cs), b.input('s', F, cs)], {}, { domain: ORTFUSE_DOMAIN, name: 'rope_q' });
      return m.graph.nodes[0];
    };
    expect(validateNode(rope.schema, node([2, 14, 16, 64], [1, 1, 16, 64]))[0].shape).toEqual([2, 14, 16, 64]);
    expect(() => validateNode(rope.schema, node([2, 14, 16, 64], [1, 1, 16, 32]))).toThrow(
      "node 'rope_q' (ai.ortfuse::RoPE): cos [1,1,16,32] does not broadcast to x [2,14,16,64] at axis 3: 64 vs 32");
    expect(() => validateNode(rope.schema, node([2, 14, 16, 63], [1, 1, 16, 63]))).toThrow(/odd last dim/);
    expect(() => validateNode(rope.schema, node([2, 14, 16, 64], [1, 14, 16, 64]))).toThrow(/must have 1 at axis 1/);
    expect(() => validateNode(rope.schema, node([14, 16, 64], [1, 16, 64]))).toThrow(/expected rank 4/);
  });
});

describe('RoPE float64 reference', () => {
  it('dx matches finite differences (batch-broadcast cos/sin)', () => {
    const sh: RopeShape = { b: 2, heads: 2, s: 3, d: 4, bc: 1 };
    const n = sh.b * sh.heads * sh.s * sh.d;
    const x = Float64Array.from(randn(rng(5), n));
    const dy = Float64Array.from(randn(rng(6), n));
    const { cos, sin } = cosSin(sh, 1);
    const f = () => ropeRef(x, cos, sin, sh).reduce((s, v, i) => s + v * dy[i], 0);
    const dx = ropeGradRef(dy, cos, sin, sh);
    const idx = [0, 1, 2, 3, 13, n - 1];
    finiteDiff(f, x, idx).forEach((v, k) => expect(dx[idx[k]]).toBeCloseTo(v, 6));
  });
});
