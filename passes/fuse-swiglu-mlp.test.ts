import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext, type Pass } from '../src/rewrite/pass.js';
import { fuseSwigluPass } from './fuse-swiglu.js';
import { fuseSwigluMlpPass } from './fuse-swiglu-mlp.js';
import { buildModel, fuseAndCompare, type InputDecl } from './fusion-testing.js';

const F = DataType.FLOAT;
const [H, I] = [8, 20];
const X: InputDecl = { name: 'x', elem: F, shape: ['B', 'S', H] };
const W = (name: string, shape: number[]): InputDecl => ({ name, elem: F, shape });
/** Torch layout [out, in] (read through Transpose) and stored-transposed [in, out] weights. */
const WEIGHTS = [W('wg', [I, H]), W('wu', [I, H]), W('wd', [H, I]), W('wg_t', [H, I]), W('wu_t', [H, I]), W('wd_t', [I, H])];

/** fuse-swiglu then fuse-swiglu-mlp, as the pipeline runs them (counts merged). */
const both: Pass = {
  name: 'swiglu+mlp',
  run(m, ctx) {
    const a = fuseSwigluPass.run(m, ctx), b = fuseSwigluMlpPass.run(m, ctx);
    return { modified: a.modified || b.modified, counts: { ...a.counts, ...b.counts } };
  },
};

const T = (b: GraphBuilder, w: Value) => b.op.Transpose(w, { perm: [1, 0] });
/** down(silu(gate(x)) * up(x)) with each projection given as a function of its input. */
function mlp(b: GraphBuilder, x: Value, gate: (a: Value) => Value, up: (a: Value) => Value, down: (a: Value) => Value): Value {
  const g = gate(x);
  return down(b.op.Mul(b.op.Mul(g, b.op.Sigmoid(g)), up(x)));
}

describe('fuse-swiglu-mlp', () => {
  it('fuses the torch form (MatMul(a, Transpose(W))), the stored-transposed form and a mix; numerics as before', async () => {
    const m = buildModel([X, ...WEIGHTS], (b, x, wg, wu, wd, wgT, wuT, wdT) => {
      const lin = (w: Value) => (a: Value) => b.op.MatMul(a, T(b, w));
      const raw = (w: Value) => (a: Value) => b.op.MatMul(a, w);
      return [
        mlp(b, x, lin(wg), lin(wu), lin(wd)), // torch export: x·Transpose(W)
        mlp(b, x, raw(wgT), raw(wuT), raw(wdT)), // weights stored [in, out]
        mlp(b, x, lin(wg), raw(wuT), lin(wd)), // mixed
      ];
    });
    const r = await fuseAndCompare(m, both);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-swiglu': 3, 'fuse-swiglu-mlp': 3 });
    // Transposes left: one per stored-transposed weight use (4), the torch form's are gone.
    expect(r.ops).toEqual({ SwiGLUMLP: 3, Transpose: 4 });
    const nodes = m.graph.nodes.filter((n) => n.opType === 'SwiGLUMLP');
    expect(nodes.every((n) => n.domain === 'ai.ortfuse' && n.inputs[0]?.name === 'x')).toBe(true);
    expect(nodes[0].inputs.map((v) => v?.name)).toEqual(['x', 'wg', 'wu', 'wd']);
    expect(r.second.modified).toBe(false);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('leaves the near misses alone', async () => {
    const m = buildModel([X, { ...X, name: 'x2' }, ...WEIGHTS.slice(0, 3)], (b, x, x2, wg, wu, wd) => {
      const lin = (w: Value) => (a: Value) => b.op.MatMul(a, T(b, w));
      const upRead = lin(wu)(x);
      let act: Value | undefined;
      const out = [
        mlp(b, x, lin(wg), () => lin(wu)(x2), lin(wd)), // gate and up of different inputs
        mlp(b, x, lin(wg), () => upRead, lin(wd)), upRead, // the up projection is read elsewhere too
        mlp(b, x, lin(wg), lin(wu), (a) => lin(wd)((act = a))), // the SwiGLU output is read elsewhere too
      ];
      out.push(act!, mlp(b, x, lin(wg), lin(wu), lin(wd))); // control: fuses
      return out;
    });
    const r = await fuseAndCompare(m, both);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-swiglu': 4, 'fuse-swiglu-mlp': 1 });
    expect(r.ops).toMatchObject({ SwiGLUMLP: 1, SwiGLU: 3, MatMul: 9 });
    expect(r.errors.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(r.errors[5]).toBeLessThan(1e-5);
  });

  it('explains weights without static dims', () => {
    const m = buildModel([X, { name: 'wg', elem: F, shape: ['I', H] }, { name: 'wu', elem: F, shape: ['I', H] }, { name: 'wd', elem: F, shape: [H, 'I'] }], (b, x, wg, wu, wd) => {
      const lin = (w: Value) => (a: Value) => b.op.MatMul(a, T(b, w));
      return [mlp(b, x, lin(wg), lin(wu), lin(wd))];
    });
    const ctx = newContext({}, true);
    fuseSwigluPass.run(m, ctx);
    expect(fuseSwigluMlpPass.run(m, ctx)).toEqual({ modified: false, counts: {} });
    expect(ctx.explanations).toEqual([
      expect.objectContaining({ rule: 'fuse-swiglu-mlp', reason: "check: the gate weight [I,8] is not 2-D with static dims (value 'wg')" }),
    ]);
  });
});
