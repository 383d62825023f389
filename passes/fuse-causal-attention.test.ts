import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { buildModel, fuseAndCompare, type InputDecl } from './fusion-testing.js';
import { fuseCausalAttentionPass } from './fuse-causal-attention.js';

const F = DataType.FLOAT;
const D = 8;
const io = (name: string, heads: number): InputDecl => ({ name, elem: F, shape: ['B', heads, 'S', D] });
const i64 = (b: GraphBuilder, v: number[]) => b.constant(v, { dtype: DataType.INT64, dims: [v.length] });
const scalarI = (b: GraphBuilder, v: number) => b.constant([v], { dtype: DataType.INT64, dims: [] });

/** transformers' repeat_kv: [B, kv, S, D] -> [B, kv·g, S, D] from the runtime shape of x. */
function repeatKv(b: GraphBuilder, x: Value, kv: number, g: number): Value {
  const op = b.op;
  const bs = op.Shape(x, { start: 0, end: 1 }), s = op.Shape(x, { start: 2, end: 3 });
  const e = op.Expand(op.Unsqueeze(x, i64(b, [2])), op.Concat(bs, i64(b, [kv]), i64(b, [g]), s, i64(b, [D]), { axis: 0 }));
  return op.Reshape(e, op.Concat(bs, i64(b, [kv * g]), s, i64(b, [D]), { axis: 0 }), { allowzero: 1 });
}

/** Additive [S, S] mask from positions of q's length: `allowed(kpos, qpos)` true -> 0, else float32's lowest. */
function mask(b: GraphBuilder, q: Value, allowed: (k: Value, q: Value) => Value): Value {
  const op = b.op;
  const pos = op.Range(scalarI(b, 0), op.Squeeze(op.Shape(q, { start: 2, end: 3 })), scalarI(b, 1));
  const cond = allowed(op.Unsqueeze(pos, i64(b, [0])), op.Unsqueeze(pos, i64(b, [1])));
  return op.Where(cond, b.constant([0], { dtype: F, dims: [] }), b.constant([-3.4028234663852886e38], { dtype: F, dims: [] }));
}

/** softmax(q·kfᵀ·scale + mask)·vf, as the eager export writes it. */
function attention(b: GraphBuilder, q: Value, kf: Value, vf: Value, m: Value): Value {
  const op = b.op;
  const s = op.Mul(op.MatMul(q, op.Transpose(kf, { perm: [0, 1, 3, 2] })), b.constant([1 / Math.sqrt(D)], { dtype: F, dims: [] }));
  return op.MatMul(op.Softmax(op.Add(s, m), { axis: -1 }), vf);
}

describe('fuse-causal-attention', () => {
  it('fuses GQA (repeat_kv) and plain heads under a causal mask; numerics as before', async () => {
    const m = buildModel([io('q', 4), io('k', 2), io('v', 2), io('q1', 2), io('k1', 2), io('v1', 2)], (b, q, k, v, q1, k1, v1) => {
      const causal = mask(b, q, (kp, qp) => b.op.LessOrEqual(kp, qp));
      return [attention(b, q, repeatKv(b, k, 2, 2), repeatKv(b, v, 2, 2), causal), attention(b, q1, k1, v1, causal)];
    });
    const r = await fuseAndCompare(m, fuseCausalAttentionPass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-causal-attention': 2 });
    expect(r.ops).toMatchObject({ CausalAttention: 2 });
    expect(r.ops.Softmax ?? 0).toBe(0);
    const fused = m.graph.nodes.filter((n) => n.opType === 'CausalAttention');
    expect(fused.map((n) => n.inputs.map((x) => x!.name))).toEqual([['q', 'k', 'v'], ['q1', 'k1', 'v1']]);
    expect(fused.map((n) => n.attrFloat('scale'))).toEqual([Math.fround(1 / Math.sqrt(D)), Math.fround(1 / Math.sqrt(D))]);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
    expect(r.second.modified).toBe(false);
  });

  const bad: [string, (b: GraphBuilder, q: Value, p: Value) => Value, RegExp][] = [
    ['a padding input added', (b, q, p) => b.op.Add(mask(b, q, (kp, qp) => b.op.LessOrEqual(kp, qp)), p), /not a function of the input shapes alone/],
    ['a sliding window', (b, q) => mask(b, q, (kp, qp) => b.op.And(b.op.LessOrEqual(kp, qp), b.op.Greater(kp, b.op.Sub(qp, scalarI(b, 3))))), /compares positions 2 times/],
    ['an anti-causal mask', (b, q) => mask(b, q, (kp, qp) => b.op.LessOrEqual(qp, kp)), /at batch 2 and length 2 the mask is 0 at query 0, key 1 \(batch row 0\), not <= -1e30/],
  ];
  for (const [what, makeMask, reason] of bad)
    it(`does not fuse ${what}`, async () => {
      const pad: InputDecl = { name: 'pad', elem: F, shape: ['B', 1, 1, 'S'] };
      const m = buildModel([io('q', 2), io('k', 2), io('v', 2), pad], (b, q, k, v, p) => [attention(b, q, k, v, makeMask(b, q, p))]);
      const r = await fuseAndCompare(m, fuseCausalAttentionPass);
      expect(r.result.modified).toBe(false);
      expect(r.ops.Softmax).toBe(1);
      expect(r.explanations.map((e) => e.reason).join('\n')).toMatch(reason);
    });
});
