/**
 * Gradient rules of the fused ops (custom-ops/<op>/grad.ts) against central finite differences of
 * their portable bodies, in float64 on onnxruntime-node (RMSNorm with stash_type = DOUBLE). The
 * backward of RMSNorm, SwiGLU and RoPE (x) is one backward fused op per forward node.
 */
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/index.js';
import type { GraphBuilder, Model, Value } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { gradCheck, type InputSpec } from './autodiff-util.js';

const fused = (b: GraphBuilder, op: string, inputs: Value[], attrs = {}) => b.op.call(op, inputs, attrs, { domain: 'ai.ortfuse' })[0];
const prepare = (m: Parameters<typeof ensureFunctions>[0]) => void ensureFunctions(m, 'cpu');

type Case = [name: string, specs: InputSpec[], build: (b: GraphBuilder, xs: Value[]) => Value, ops: [forward: string, backward: string]];

const cases: Case[] = [
  ['SwiGLU symbolic', [{ name: 'gate', dims: [2, 3, 4], decl: ['B', 'S', 4], lo: -4, hi: 4 }, { name: 'up', dims: [2, 3, 4], decl: ['B', 'S', 4] }],
    (b, [g, u]) => fused(b, 'SwiGLU', [g, u]), ['SwiGLU', 'SwiGLUGrad']],
  ['SwiGLU, only gate trained', [{ name: 'gate', dims: [3, 5], lo: -4, hi: 4 }, { name: 'up', dims: [3, 5], wrt: false }],
    (b, [g, u]) => fused(b, 'SwiGLU', [g, u]), ['SwiGLU', 'SwiGLUGrad']],
  ['RMSNorm (stash double)', [{ name: 'x', dims: [2, 3, 6], decl: ['B', 'S', 6] }, { name: 'w', dims: [6] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }), ['RMSNorm', 'RMSNormGrad']],
  ['RMSNorm large inputs', [{ name: 'x', dims: [3, 4], lo: 100, hi: 1000 }, { name: 'w', dims: [4] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }), ['RMSNorm', 'RMSNormGrad']],
  ['RMSNorm rank 1, large epsilon', [{ name: 'x', dims: [5], lo: -0.1, hi: 0.1 }, { name: 'w', dims: [5] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 0.25 }, stash_type: DataType.DOUBLE }), ['RMSNorm', 'RMSNormGrad']],
  ['RMSNorm frozen weight (dx only)', [{ name: 'x', dims: [3, 1, 6] }, { name: 'w', dims: [6], wrt: false }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }), ['RMSNorm', 'RMSNormGrad']],
  ['RMSNorm weight only (x not trained)', [{ name: 'x', dims: [2, 2, 4], wrt: false }, { name: 'w', dims: [4] }],
    (b, [x, w]) => fused(b, 'RMSNorm', [x, w], { epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }), ['RMSNorm', 'RMSNormGrad']],
  ['RoPE, cos/sin broadcast over batch and heads', [
    { name: 'x', dims: [2, 2, 3, 4], decl: ['B', 2, 'S', 4] }, { name: 'cos', dims: [1, 1, 3, 4] }, { name: 'sin', dims: [1, 1, 3, 4] },
  ], (b, [x, c, s]) => fused(b, 'RoPE', [x, c, s]), ['RoPE', 'RoPEGrad']],
  ['RoPE, per-batch cos/sin not trained', [
    { name: 'x', dims: [2, 3, 5, 6] }, { name: 'cos', dims: [2, 1, 5, 6], wrt: false }, { name: 'sin', dims: [2, 1, 5, 6], wrt: false },
  ], (b, [x, c, s]) => fused(b, 'RoPE', [x, c, s]), ['RoPE', 'RoPEGrad']],
];

/** ai.ortfuse ops of a graph, counted by type. */
const fusedCounts = (m: Model): Record<string, number> => {
  const c: Record<string, number> = {};
  for (const n of m.graph.nodes) if (n.domain === 'ai.ortfuse') c[n.opType] = (c[n.opType] ?? 0) + 1;
  return c;
};

describe('fused-op gradient rules vs finite differences (float64)', () => {
  it('ONNX RMSNormalization-23 (the same rule: one RMSNormGrad)', async () => {
    const r = await gradCheck([{ name: 'x', dims: [2, 3, 6], decl: ['B', 'S', 6] }, { name: 'w', dims: [6] }],
      (b, [x, w]) => b.op.RMSNormalization(x, w, { axis: -1, epsilon: { float: 1e-6 }, stash_type: DataType.DOUBLE }), { opset: 23, prepare });
    expect(r.errors.x).toBeLessThan(1e-6);
    expect(r.errors.w).toBeLessThan(1e-6);
    expect(fusedCounts(r.model)).toEqual({ RMSNormGrad: 1 });
    expect(r.model.graph.nodes.find((n) => n.opType === 'RMSNormGrad')!.attrFloat('epsilon')).toBeCloseTo(1e-6, 12);
  });

  it('ONNX RMSNormalization-23 without epsilon: the spec default 1e-5 (large inputs would hide it; small ones do not)', async () => {
    const r = await gradCheck([{ name: 'x', dims: [3, 4], lo: -0.01, hi: 0.01 }, { name: 'w', dims: [4] }],
      (b, [x, w]) => b.op.RMSNormalization(x, w, { stash_type: DataType.DOUBLE }), { opset: 23, prepare });
    expect(r.errors.x).toBeLessThan(1e-6);
    expect(r.errors.w).toBeLessThan(1e-6);
  });

  it.each(cases)('%s', async (_name, specs, build, [forward, backward]) => {
    const r = await gradCheck(specs, build, { prepare });
    const trained = specs.filter((s) => s.wrt !== false);
    for (const n of Object.keys(r.errors)) {
      expect(r.scale[n]).toBeGreaterThan(1e-12);
      expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
    }
    expect(Object.keys(r.errors)).toHaveLength(trained.length);
    expect(fusedCounts(r.model)).toEqual({ [forward]: 1, [backward]: 1 });
  });
});

const lceSpecs = (withBias: boolean, labels: number[]): InputSpec[] => [
  { name: 'hidden', dims: [labels.length, 4], type: DataType.FLOAT, decl: ['N', 4] },
  { name: 'weight', dims: [7, 4], type: DataType.FLOAT },
  ...(withBias ? [{ name: 'bias', dims: [7], type: DataType.FLOAT }] : []),
  { name: 'labels', dims: [labels.length], type: DataType.INT64, data: labels },
];

// The op computes in float32 (its loss is float32 by definition), so these use float32 finite
// differences (h = 1e-2) and a 2e-3 tolerance; several chunks via chunk_size = 2.
describe('FusedLinearCrossEntropy gradient vs finite differences (float32)', () => {
  const labels = [3, -100, 0, 6, 2, -100, 1];
  it.each([
    ['mean, ignore rows, 4 chunks, bias', true, { chunk_size: 2 }],
    ['sum, label smoothing, no bias', false, { reduction: 'sum', label_smoothing: { float: 0.1 }, chunk_size: 3 }],
    ['none, Liger chunk rule', true, { reduction: 'none' }],
  ] as const)('%s', async (_n, withBias, attrs) => {
    const r = await gradCheck(lceSpecs(withBias, labels), (b, xs) => {
      const [h, w, ...rest] = xs;
      const bias = withBias ? rest[0] : null;
      const l = rest[rest.length - 1];
      return b.op.call('FusedLinearCrossEntropy', [h, w, bias, l], attrs, { domain: 'ai.ortfuse' })[0];
    }, { prepare, h: 1e-2 });
    for (const n of Object.keys(r.errors)) {
      expect(r.scale[n]).toBeGreaterThan(1e-6);
      expect(r.errors[n], `d/d${n}`).toBeLessThan(2e-3);
    }
    expect(Object.keys(r.errors)).toHaveLength(withBias ? 3 : 2);
  });
});
