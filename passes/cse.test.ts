import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { cse } from './cse.js';

const F = DataType.FLOAT;

describe('cse', () => {
  it('merges equal nodes, Constant nodes and small initializers; keeps distinct and random ones', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 4]);
    const s1 = b.op.Sigmoid(x);
    const s2 = b.op.Sigmoid(x); // = s1
    const k = b.constant([1, 2, 3, 4], { dtype: F, name: 'k' });
    const a1 = b.op.Add(s1, k);
    const a2 = b.op.Add(s2, k); // = a1 once s2 = s1
    const a3 = b.op.Add(s2, b.constant([1, 2, 3, 4], { dtype: F, name: 'k2' })); // equal values, but a possible parameter: kept
    const r1 = b.op.ReduceSum(a1, b.constant([1]), { keepdims: 1 });
    const r2 = b.op.ReduceSum(a2, b.constant([1]), { keepdims: 0 }); // other attribute
    const c1 = b.op.Constant({ value: Tensor.from(F, [], [0.5]) });
    const c2 = b.op.Constant({ value: Tensor.from(F, [], [0.5]) }); // = c1
    const n1 = b.op.RandomNormalLike(x);
    const n2 = b.op.RandomNormalLike(x); // random: never merged
    const [d1] = b.op.call('Dropout', [a1, c1, b.constant(1, { dtype: DataType.BOOL, dims: [] })], {}, { outputs: 1 });
    const [d2] = b.op.call('Dropout', [a1, c1, b.constant(1, { dtype: DataType.BOOL, dims: [] })], {}, { outputs: 1 }); // training mode
    b.output(b.op.Mul(b.op.Add(a1, a2), c1), 'y0');
    b.output(b.op.Mul(a3, c2), 'y1');
    b.output(b.op.Add(r1, b.op.Unsqueeze(r2, b.constant([1]))), 'y2');
    b.output(b.op.Mul(b.op.Sub(n1, n2), b.constant(0, { dtype: F, dims: [] })), 'y3');
    b.output(b.op.Mul(b.op.Sub(d1, d2), b.constant(0, { dtype: F, dims: [] })), 'y4');
    // The same value under two output names: both outputs stay.
    b.output(b.op.Neg(x), 'o1');
    b.output(b.op.Neg(x), 'o2');

    const r = await checkPass(m, cse);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ nodes: 3, initializers: 4 });
    expect(m.graph.initializers.map((v) => v.name)).toContain('k2');
    expect(r.after).toMatchObject({ Sigmoid: 1, Add: 4, Constant: 1, RandomNormalLike: 2, Dropout: 2, Neg: 2, ReduceSum: 2 });
    expect(r.before).toMatchObject({ Sigmoid: 2, Add: 5, Constant: 2 });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['y0', 'y1', 'y2', 'y3', 'y4', 'o1', 'o2']);
    expect(r.diffs.slice(0, 3)).toEqual([0, 0, 0]);
    expect(r.diffs.slice(5)).toEqual([0, 0]);
    expect(r.second).toEqual({ modified: false, counts: {} });
  });

  it('merges a duplicate whose output is a graph output onto the kept node (name kept)', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [3]);
    const e1 = b.op.Exp(x);
    b.output(b.op.Neg(e1), 'y');
    b.output(b.op.Exp(x), 'e');
    const r = await checkPass(m, cse);
    expect(r.result.counts).toEqual({ nodes: 1 });
    expect(r.after).toEqual({ Exp: 1, Neg: 1 });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['y', 'e']);
    expect(r.diffs).toEqual([0, 0]);
    expect(r.problems).toEqual([]);
  });
});
