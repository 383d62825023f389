import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Model, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { opCounts } from '../src/rewrite/testing.js';
import { fuseRopePass } from './fuse-rope.js';
import { buildModel, fuseAndCompare, type InputDecl } from './fusion-testing.js';

const F = DataType.FLOAT;
const D = 16;
const INT64_MAX = 9223372036854775807n;
const Q: InputDecl = { name: 'q', elem: F, shape: ['B', 4, 'S', D] };
const K: InputDecl = { name: 'k', elem: F, shape: ['B', 2, 'S', D] };
/** Angles positions x inv_freq, [1, S, D/2] (random in tests). */
const FREQ: InputDecl = { name: 'freqs', elem: F, shape: [1, 'S', D / 2] };

const ints = (b: GraphBuilder, v: number[]) => b.constant(v, { dims: [v.length], dtype: DataType.INT64 });

/** HF's tables: emb = cat(freqs, freqs); cos/sin = Cos/Sin(emb).unsqueeze(1) -> [1, 1, S, D]. */
function tables(b: GraphBuilder, freqs: Value): [Value, Value] {
  const emb = b.op.Concat(freqs, freqs, { axis: -1 });
  const one = ints(b, [1]);
  return [b.op.Unsqueeze(b.op.Cos(emb), one), b.op.Unsqueeze(b.op.Sin(emb), one)];
}

/** The exporter's slice: Slice(x, [start], [end], [axis], [1]). */
function slice(b: GraphBuilder, x: Value, start: number, end: number | bigint, axis = 3, step: number | null = 1): Value {
  const endV = typeof end === 'bigint' ? b.initializer('int64_max', Tensor.from(DataType.INT64, [1], [end])) : ints(b, [end]);
  return step === null ? b.op.Slice(x, ints(b, [start]), endV, ints(b, [axis])) : b.op.Slice(x, ints(b, [start]), endV, ints(b, [axis]), ints(b, [step]));
}

/** x*cos + cat(-x[..., h:], x[..., :h])*sin as the torch export writes it (#80-86 of the fixture). */
function exported(b: GraphBuilder, x: Value, cos: Value, sin: Value): Value {
  const x1 = slice(b, x, 0, D / 2);
  const x2 = slice(b, x, D / 2, INT64_MAX);
  return b.op.Add(b.op.Mul(x, cos), b.op.Mul(b.op.Concat(b.op.Neg(x2), x1, { axis: -1 }), sin));
}

/** Commuted operands, axis -1, bounds without axes' INT64_MAX, no steps input. */
function commuted(b: GraphBuilder, x: Value, cos: Value, sin: Value): Value {
  const x1 = slice(b, x, 0, D / 2, -1, null);
  const x2 = slice(b, x, -D / 2, D, -1, null);
  return b.op.Add(b.op.Mul(sin, b.op.Concat(b.op.Neg(x2), x1, { axis: 3 })), b.op.Mul(cos, x));
}

const ropeNodes = (m: Model, op: string) => m.graph.nodes.filter((n) => n.opType === op);

describe('fuse-rope', () => {
  it('fuses q and k into ai.ortfuse.RoPE reading the same cos/sin (opset 20), numerics as before', async () => {
    const m = buildModel([Q, K, FREQ], (b, q, k, f) => {
      const [cos, sin] = tables(b, f);
      return [exported(b, q, cos, sin), commuted(b, k, cos, sin)];
    });
    const r = await fuseAndCompare(m, fuseRopePass, { dims: { B: 2, S: 5 } });
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-rope': 2 });
    expect(r.ops).toEqual({ Concat: 1, Cos: 1, Sin: 1, Unsqueeze: 2, RoPE: 2 });
    const [a, c] = ropeNodes(m, 'RoPE');
    expect(a.domain).toBe('ai.ortfuse');
    expect(a.inputs.slice(1)).toEqual(c.inputs.slice(1));
    expect(a.inputs.map((v) => v!.producer?.opType)).toEqual([undefined, 'Unsqueeze', 'Unsqueeze']);
    expect(r.second.modified).toBe(false);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('emits RotaryEmbedding-23 on opset 23 with caches built once and shared by q and k', async () => {
    const m = buildModel([Q, K, FREQ], (b, q, k, f) => {
      const [cos, sin] = tables(b, f);
      return [exported(b, q, cos, sin), commuted(b, k, cos, sin)];
    }, 23);
    const r = await fuseAndCompare(m, fuseRopePass, { dims: { B: 3, S: 6 } });
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-rope': 2 });
    expect(r.ops.RotaryEmbedding).toBe(2);
    expect(r.ops.RoPE).toBeUndefined();
    const [a, c] = ropeNodes(m, 'RotaryEmbedding');
    expect(a.inputs.slice(1)).toEqual(c.inputs.slice(1)); // one pair of caches
    expect(r.ops.Squeeze).toBe(2); // Squeeze(cos), Squeeze(sin): built once
    expect(m.functions).toEqual([]);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('keeps ai.ortfuse.RoPE on opset 23 when the cos halves are not known to repeat', async () => {
    const FULL: InputDecl = { name: 'theta', elem: F, shape: [1, 'S', D] };
    const m = buildModel([Q, FULL], (b, q, t) => {
      const one = ints(b, [1]);
      return [exported(b, q, b.op.Unsqueeze(b.op.Cos(t), one), b.op.Unsqueeze(b.op.Sin(t), one))];
    }, 23);
    const r = await fuseAndCompare(m, fuseRopePass);
    expect(r.result.counts).toEqual({ 'fuse-rope': 1 });
    expect(r.ops.RoPE).toBe(1);
    expect(r.errors[0]).toBeLessThan(1e-5);
  });

  it('leaves the near misses alone', async () => {
    const m = buildModel([Q, FREQ], (b, q, f) => {
      const [cos, sin] = tables(b, f);
      const [, sin2] = tables(b, b.op.Mul(f, f));
      const x = (i: number) => b.op.Add(q, b.constant(i, { dtype: F, dims: [] }));
      const rot = (xv: Value, h: number) => b.op.Concat(b.op.Neg(slice(b, xv, h, INT64_MAX)), slice(b, xv, 0, h), { axis: -1 });
      const x1 = x(1);
      const x2 = x(2);
      const x3 = x(3);
      const x4 = x(4);
      const x5 = x(5);
      return [
        b.op.Add(b.op.Mul(x1, cos), b.op.Mul(rot(x1, 6), sin)), // halves split at 6, not 8
        b.op.Add(b.op.Mul(x2, cos), b.op.Mul(b.op.Concat(slice(b, x2, 0, 8), b.op.Neg(slice(b, x2, 8, INT64_MAX)), { axis: -1 }), sin)), // cat(x1, -x2)
        b.op.Add(b.op.Mul(x3, cos), b.op.Mul(rot(x3, 8), cos)), // cos in both terms
        b.op.Add(b.op.Mul(x4, cos), b.op.Mul(rot(x4, 8), sin2)), // sin of other angles
        exported(b, x5, cos, sin), // control: fuses
      ];
    });
    const before = opCounts(m);
    const r = await fuseAndCompare(m, fuseRopePass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-rope': 1 });
    expect(r.ops.Neg).toBe(before.Neg - 1);
    expect(ropeNodes(m, 'RoPE')[0].inputs[0]!.producer!.inputs[1]!.initializer!.toNumbers()).toEqual([5]);
    expect(r.errors.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(r.errors[4]).toBeLessThan(1e-5);
  });
});
