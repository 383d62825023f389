/**
 * Gradient rules of the fused ops (custom-ops/<op>/grad.ts) against central finite differences of
 * their portable bodies, in float64 on onnxruntime-node (RMSNorm with stash_type = DOUBLE).
 */
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/index.js';
import type { GraphBuilder, Value } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { gradCheck, type InputSpec } from './autodiff-util.js';

const fused = (b: GraphBuilder, op: string, inputs: Value[], attrs = {}) => b.op.call(op, inputs, attrs, { domain: 'ai.ortfuse' })[0];
const prepare = (m: Parameters<typeof ensureFunctions>[0]) => void ensureFunctions(m, 'cpu');

type Case = [name: string, specs: InputSpec[], build: (b: GraphBuilder, xs: Value[]) => Value];

const cases: Case[] = [
  ['SwiGLU symbolic', [{ name: 'gate', dims: [2, 3, 4], decl: ['B', 'S', 4], lo: -4, hi: 4 }, { name: 'up', dims: [2, 3, 4], decl: ['B', 'S', 4] }],
    (b, [g, u]) => fused(b, 'SwiGLU', [g, u])],
  ['RMSNorm (stash double)', [{ name: 'x', dims: [2, 3, 6], decl: ['B', 'S', 6] }, { name: 'w', dims: [6] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE })],
  ['RMSNorm large inputs', [{ name: 'x', dims: [3, 4], lo: 100, hi: 1000 }, { name: 'w', dims: [4] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE })],
  ['RoPE, cos/sin broadcast over batch and heads', [
    { name: 'x', dims: [2, 2, 3, 4], decl: ['B', 2, 'S', 4] }, { name: 'cos', dims: [1, 1, 3, 4] }, { name: 'sin', dims: [1, 1, 3, 4] },
  ], (b, [x, c, s]) => fused(b, 'RoPE', [x, c, s])],
];

describe('fused-op gradient rules vs finite differences (float64)', () => {
  it.each(cases)('%s', async (_name, specs, build) => {
    const r = await gradCheck(specs, build, { prepare });
    for (const n of Object.keys(r.errors)) {
      expect(r.scale[n]).toBeGreaterThan(1e-12);
      expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
    }
    expect(Object.keys(r.errors)).toHaveLength(specs.length);
  });
});
