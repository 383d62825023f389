import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { fuseSwigluPass } from './fuse-swiglu.js';
import { buildModel, fuseAndCompare, type InputDecl } from './fusion-testing.js';

const F = DataType.FLOAT;
const G: InputDecl = { name: 'g', elem: F, shape: ['B', 'S', 16] };
const U: InputDecl = { name: 'u', elem: F, shape: ['B', 'S', 16] };

/** All 8 operand orders of Mul(Mul(g, Sigmoid(g)), up). */
function orders(b: GraphBuilder, g: Value, u: Value): Value[] {
  const out: Value[] = [];
  for (const inner of [0, 1])
    for (const outer of [0, 1])
      for (const viaTanh of [0, 1]) {
        // a distinct gate per variant (Tanh/Exp of g, Relu of a fresh op) so the 8 do not share nodes
        const gate = viaTanh ? b.op.Tanh(b.op.Add(g, b.constant(0.1 * (out.length + 1), { dtype: F, dims: [] }))) : b.op.Add(g, b.constant(0.1 * (out.length + 1), { dtype: F, dims: [] }));
        const s = b.op.Sigmoid(gate);
        const silu = inner ? b.op.Mul(s, gate) : b.op.Mul(gate, s);
        out.push(outer ? b.op.Mul(u, silu) : b.op.Mul(silu, u));
      }
  return out;
}

describe('fuse-swiglu', () => {
  it('fuses Mul(Mul(g, Sigmoid(g)), up) in every operand order, numerics as before', async () => {
    const m = buildModel([G, U], (b, g, u) => orders(b, g, u));
    const r = await fuseAndCompare(m, fuseSwigluPass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-swiglu': 8 });
    expect(r.ops).toEqual({ Add: 8, Tanh: 4, SwiGLU: 8 });
    expect(m.graph.nodes.filter((n) => n.opType === 'SwiGLU').every((n) => n.domain === 'ai.ortfuse' && n.inputs[1]?.name === 'u')).toBe(true);
    expect(m.opsetImports.get('ai.ortfuse')).toBe(1);
    expect(r.second.modified).toBe(false);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('leaves the near misses alone', async () => {
    const m = buildModel([G, U], (b, g, u) => {
      const sg = b.op.Mul(g, b.op.Sigmoid(g));
      const r = b.op.Relu(g);
      const e = b.op.Exp(g);
      const bias = b.constant(Array.from({ length: 16 }, (_, i) => i / 16), { dims: [16], dtype: F });
      return [
        b.op.Mul(b.op.Mul(g, b.op.Sigmoid(u)), u), // Sigmoid of another tensor than the gate
        b.op.Mul(sg, u), sg, // the silu is read elsewhere too
        b.op.Mul(b.op.Mul(r, b.op.Sigmoid(r)), bias), // "up" [16] broadcasts: not the same shape as the gate
        b.op.Mul(b.op.Mul(e, b.op.Sigmoid(e)), u), // control: fuses
      ];
    });
    const r = await fuseAndCompare(m, fuseSwigluPass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-swiglu': 1 });
    expect(r.ops).toMatchObject({ SwiGLU: 1, Sigmoid: 3, Mul: 6 });
    expect(r.errors.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(r.errors[4]).toBeLessThan(1e-5);
  });

  it('explains a broadcast up', () => {
    const m = buildModel([G, { name: 'u', elem: F, shape: [16] }], (b, g, u) => [b.op.Mul(b.op.Mul(g, b.op.Sigmoid(g)), u)]);
    const ctx = newContext({}, true);
    expect(fuseSwigluPass.run(m, ctx)).toEqual({ modified: false, counts: {} });
    expect(ctx.explanations).toEqual([
      expect.objectContaining({ rule: 'fuse-swiglu', matched: 3, reason: "check: gate [B,S,16] and up [16] are not provably the same shape (value 'u')" }),
    ]);
    // Nothing fired: the inferred types were put back.
    expect(m.graph.nodes.every((n) => n.outputs.every((o) => o.type === undefined))).toBe(true);
  });
});
