import { describe, expect, it } from 'vitest';
import { createModel, Graph, GraphBuilder, Value } from '../src/ir/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { checkPass } from '../src/rewrite/testing.js';
import { constantFold } from './constant-fold.js';

const { FLOAT: F, INT64: I64, INT32: I32, BOOL } = DataType;

describe('constant-fold', () => {
  it('folds shape and index subgraphs with exact dtypes, leaves dynamic shapes and large weights', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 8, 16]);
    const w = b.constant(Array.from({ length: 256 }, (_, i) => (i % 7) / 7), { dtype: F, dims: [16, 16], name: 'w' });
    const big = b.constant(Array.from({ length: 2048 }, (_, i) => i), { dtype: I64, dims: [2048], name: 'big' });
    const i64 = (v: number[], dims?: number[]) => b.constant(v, { dtype: I64, dims });
    const f32 = (v: number[], dims?: number[]) => b.constant(v, { dtype: F, dims });
    const fconst = (v: number[]) => b.op.Constant({ value: Tensor.from(F, [v.length], v) }); // not a parameter
    // [-1, 16] from Shape(w)[1]: the exporter's shape plumbing
    const d1 = b.op.Gather(b.op.Shape(w), i64([1], []), { axis: 0 });
    const u = b.op.Unsqueeze(d1, i64([0]));
    const h = b.op.Reshape(x, b.op.Concat(i64([-1]), u, { axis: 0 }));
    let y = b.op.MatMul(h, w);
    // Range -> Cast -> arithmetic, Equal/Where mask, ConstantOfShape, Squeeze/Unsqueeze, Expand
    const r = b.op.Range(i64([0], []), d1, i64([1], []));
    const rf = b.op.Cast(r, { to: F });
    y = b.op.Add(y, b.op.Div(b.op.Sub(b.op.Mul(rf, f32([0.5], [])), f32([1], [])), f32([3], [])));
    y = b.op.Add(y, b.op.Where(b.op.Equal(r, i64([3], [])), f32([1], []), f32([0], [])));
    y = b.op.Mul(y, b.op.ConstantOfShape(b.op.Squeeze(b.op.Unsqueeze(u, i64([1])), i64([1])), { value: Tensor.from(F, [1], [2]) }));
    y = b.op.Add(y, b.op.Expand(f32([0.25]), b.op.Shape(w, { start: -1 })));
    // Dynamic: Shape(x)[0] stays; a Reshape by it keeps its Shape/Gather/Unsqueeze/Concat.
    const bdim = b.op.Unsqueeze(b.op.Gather(b.op.Shape(x), i64([0], []), { axis: 0 }), i64([0]));
    b.output(b.op.Reshape(y, b.op.Concat(bdim, i64([-1]), { axis: 0 })), 'y');
    // Folded graph outputs (become Constant nodes): dtypes and rounding must be ORT's.
    b.output(b.op.Slice(r, i64([2]), i64([10]), i64([0]), i64([2])), 'slice');
    b.output(b.op.Slice(r, i64([-1]), i64([-100]), i64([0]), i64([-3])), 'slice_back');
    b.output(b.op.Cast(b.op.Div(i64([-7, 7, 9]), i64([2, -2, 4])), { to: I32 }), 'int_div');
    b.output(b.op.Div(fconst([1, 2]), fconst([3, 7])), 'float_div');
    b.output(b.op.Range(f32([0.1], []), f32([1.05], []), f32([0.1], [])), 'float_range');
    b.output(b.op.Cast(fconst([-2.7, 2.7, 0, 1e9]), { to: I32 }), 'trunc');
    b.output(b.op.Cast(fconst([0, 0.5, -1]), { to: BOOL }), 'to_bool');
    b.output(b.op.Mul(b.constant([2147483647], { dtype: I32, dims: [] }), b.constant([2], { dtype: I32, dims: [] })), 'wrap');
    // Large weight: never read. Float weight (a possible parameter): not folded into a copy.
    b.output(b.op.Cast(b.op.Identity(big), { to: F }), 'big_f');
    b.output(b.op.Unsqueeze(f32([1, 2, 3]), i64([0])), 'param');

    const res = await checkPass(m, constantFold, { dims: { B: 3 } });
    expect(res.problems).toEqual([]);
    expect(res.after).toEqual({
      Reshape: 2, MatMul: 1, Add: 3, Mul: 1, Shape: 1, Gather: 1, Concat: 1,
      Constant: 8, Identity: 1, Cast: 1, Unsqueeze: 2,
    });
    expect(res.result.counts).toMatchObject({ Shape: 2, Gather: 1, Range: 2, Cast: 4, Slice: 2, ConstantOfShape: 1, Expand: 1, Where: 1, Equal: 1 });
    expect(res.diffs).toEqual(res.diffs.map(() => 0));
    expect(res.second).toEqual({ modified: false, counts: {} });
    // Folded values keep exact types; initializers of folded values are small.
    expect(m.graph.outputs.slice(1, -2).map((o) => o.tensorType?.elemType)).toEqual([I64, I64, I32, F, F, I32, BOOL, I32]);
    expect(m.graph.outputs.slice(1, -2).every((o) => o.producer?.opType === 'Constant')).toBe(true);
    expect(Array.from(res.outputs[5].data as Float32Array)).toHaveLength(10); // float32 accumulation, as ORT
    expect(m.graph.initializers.find((v) => v.name === 'big')!.initializer!.size).toBe(2048);
  });

  it('turns Constant nodes into initializers, but folds to Constant nodes inside function bodies', async () => {
    const m = createModel({ opsets: { 'my.fn': 1 } });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 3]);
    const c = b.op.Constant({ value: Tensor.from(F, [3], [1, 2, 3]) });
    const fb = new GraphBuilder(new Graph(m));
    const fx = new Value(fb.graph, 'fx');
    fb.graph.inputs.push(fx);
    const k = fb.op.Constant({ value: Tensor.from(I64, [2], [3n, 2n]) });
    fb.graph.outputs.push(fb.op.Reshape(fb.op.Transpose(fx), fb.op.Mul(k, fb.op.Constant({ value_int: 1 } as never))));
    m.functions.push({ domain: 'my.fn', name: 'T', attributeNames: [], attributeProtos: [], opsetImports: new Map([['', 20]]), body: fb.graph, extra: {} });
    b.output(b.op.call('T', [b.op.Add(x, c)], {}, { domain: 'my.fn' })[0], 'y');
    const res = await checkPass(m, constantFold);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ Constant: 1, Mul: 1 });
    expect(res.after).toEqual({ Add: 1, T: 1 });
    expect(fb.graph.initializers).toEqual([]);
    expect(fb.graph.nodes.map((n) => n.opType).sort()).toEqual(['Constant', 'Constant', 'Constant', 'Reshape', 'Transpose']);
    expect(res.diffs).toEqual([0]);
    expect(constantFold.run(m, newContext()).modified).toBe(false);
  });
  it('folds the ops of an exported causal mask (comparisons, And/Or/Xor, Max/Min, CumSum, GatherND) as ORT computes them', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const i64 = (v: number[], dims?: number[]) => b.constant(v, { dtype: I64, dims });
    const f32 = (v: number[], dims?: number[]) => b.op.Constant({ value: Tensor.from(F, dims ?? [v.length], v) });
    const pos = b.op.Range(i64([0], []), i64([5], []), i64([1], []));
    const q = b.op.Unsqueeze(pos, i64([1])), k = b.op.Unsqueeze(pos, i64([0]));
    const le = b.op.LessOrEqual(k, q), ge = b.op.GreaterOrEqual(k, i64([2], []));
    b.output(b.op.Cast(b.op.And(le, ge), { to: I32 }), 'and');
    b.output(b.op.Cast(b.op.Or(le, ge), { to: I32 }), 'or');
    b.output(b.op.Cast(b.op.Xor(le, ge), { to: I32 }), 'xor');
    b.output(b.op.Max(q, k, i64([3], [])), 'max');
    b.output(b.op.Min(f32([1.5, -2, 7]), f32([0.5], [1])), 'min');
    const v = i64([1, 0, 0, 2, 5, 1], [2, 3]);
    b.output(b.op.CumSum(v, i64([1], []), { exclusive: 0, reverse: 0 }), 'cumsum');
    b.output(b.op.CumSum(v, i64([-1], []), { exclusive: 1, reverse: 1 }), 'cumsum_er');
    b.output(b.op.CumSum(f32([0.5, 0.25, 2], [3]), i64([0], [])), 'cumsum_f');
    const data = b.op.Reshape(b.op.Range(i64([10], []), i64([34], []), i64([1], [])), i64([2, 3, 4]));
    b.output(b.op.GatherND(data, i64([1, 2, 0, -1, 1, 0], [3, 2]), { batch_dims: 0 }), 'gnd_rows');
    b.output(b.op.GatherND(data, i64([1, 2, 3, 0, 0, 1], [2, 1, 3]), { batch_dims: 0 }), 'gnd_elems');
    const res = await checkPass(m, constantFold);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toMatchObject({ LessOrEqual: 1, GreaterOrEqual: 1, And: 1, Or: 1, Xor: 1, Max: 1, Min: 1, CumSum: 3, GatherND: 2 });
    expect(m.graph.outputs.every((o) => o.producer?.opType === 'Constant')).toBe(true);
    expect(res.diffs).toEqual(res.diffs.map(() => 0));
    expect(Array.from(res.outputs[6].data as BigInt64Array, Number)).toEqual([0, 0, 0, 6, 1, 0]); // exclusive, reversed
  });
});
