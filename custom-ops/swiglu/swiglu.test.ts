import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { f32, finiteDiff, fusedModel, randn, relErr, rng, runOrt } from '../testing.js';
import { swiglu } from './function.js';
import { swigluGradRef, swigluRef } from './reference.js';

const F = DataType.FLOAT;

describe('SwiGLU body vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      for (const [seed, shape, scale] of [[1, [2, 5, 48], 1], [2, [7, 4864], 8], [3, [3], 30]] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const r = rng(seed);
        const g = randn(r, n, scale);
        const u = randn(r, n);
        const m = fusedModel(swiglu, [{ name: 'g', elem: F, shape: [...shape] }, { name: 'u', elem: F, shape: [...shape] }], {}, target,
          { output: { name: 'y', elem: F, shape: [...shape] } });
        const out = await runOrt(m, { g: f32(g, [...shape]), u: f32(u, [...shape]) });
        expect(relErr(out.y.data as Float32Array, swigluRef(g, u))).toBeLessThan(1e-5);
      }
    });

  it('validator: gate and up must match', () => {
    const node = (gs: number[], us: number[]) => {
      const m = createModel();
      const b = new GraphBuilder(m.graph);
      b.op.call('SwiGLU', [b.input('g', F, gs), b.input('u', F, us)], {}, { domain: ORTFUSE_DOMAIN, name: 'act' });
      return m.graph.nodes[0];
    };
    expect(validateNode(swiglu.schema, node([2, 16], [2, 16]))[0].shape).toEqual([2, 16]);
    expect(() => validateNode(swiglu.schema, node([2, 16], [2, 8]))).toThrow(
      "node 'act' (ai.ortfuse::SwiGLU): gate [2,16] and up [2,8] differ at axis 1: 16 vs 8");
    expect(() => validateNode(swiglu.schema, node([2, 16], [16]))).toThrow(/must have the same shape/);
  });
});

describe('SwiGLU float64 reference', () => {
  it('dgate and dup match finite differences', () => {
    const r = rng(4);
    const g = Float64Array.from(randn(r, 8, 3));
    const u = Float64Array.from(randn(r, 8));
    const dy = Float64Array.from(randn(r, 8));
    const f = () => swigluRef(g, u).reduce((s, v, i) => s + v * dy[i], 0);
    const grad = swigluGradRef(g, u, dy);
    const idx = [0, 3, 7];
    finiteDiff(f, g, idx).forEach((v, k) => expect(grad.dGate[idx[k]]).toBeCloseTo(v, 6));
    finiteDiff(f, u, idx).forEach((v, k) => expect(grad.dUp[idx[k]]).toBeCloseTo(v, 6));
  });
});
