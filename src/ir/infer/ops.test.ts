/** Inference on concrete builder graphs, checked against the shapes onnxruntime-node produces. */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DataType } from '../../onnx/schema.js';
import { createModel, GraphBuilder } from '../builder.js';
import { Tensor } from '../tensor.js';
import { compareWithOrt } from './test-helpers.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;

interface Case {
  name: string;
  opset?: number;
  build: (b: GraphBuilder) => void;
  feeds?: Record<string, ort.Tensor>;
}

const i64 = (dims: number[], values: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);

const CASES: Case[] = [
  {
    name: 'elementwise, comparisons, Where and variadic broadcasting',
    build: (b) => {
      const x = b.input('x', F, [2, 1, 4]);
      const y = b.input('y', F, [3, 1]);
      const s = b.op.Add(x, y);
      b.op.Pow(s, b.constant([2], { dtype: F, dims: [] }));
      for (const op of ['Sqrt', 'Reciprocal', 'Neg', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Cos', 'Sin', 'Abs', 'Erf']) b.op[op](s);
      const lt = b.op.Less(x, y);
      b.op.Where(lt, x, b.op.Mul(y, y));
      b.op.Not(b.op.And(lt, b.op.GreaterOrEqual(x, y)));
      b.op.Xor(b.op.Or(b.op.Equal(x, y), b.op.LessOrEqual(x, y)), b.op.Greater(x, y));
      b.op.IsNaN(s);
      b.op.IsInf(s);
      b.op.Max(x, y, b.op.Sub(x, y));
      b.op.Min(x, y);
      b.op.Sum(x, y, s);
      b.op.Mod(x, y, { fmod: 1 });
    },
  },
  {
    name: 'MatMul (batched, broadcast, 1-D) and Gemm',
    build: (b) => {
      const a = b.input('a', F, [2, 3, 4, 5]);
      const w = b.input('w', F, [5, 6]);
      const bw = b.input('bw', F, [3, 5, 7]);
      const v = b.input('v', F, [5]);
      b.op.MatMul(a, w);
      b.op.MatMul(a, bw);
      b.op.MatMul(a, v);
      b.op.MatMul(b.input('u', F, [4]), b.input('m', F, [2, 4, 3]));
      b.op.MatMul(v, v);
      b.op.Gemm(b.input('ga', F, [5, 3]), b.input('gb', F, [4, 5]), { transA: 1, transB: 1 });
    },
  },
  {
    name: 'Reshape (-1, 0), Flatten, Transpose, Concat, Expand, Tile',
    build: (b) => {
      const x = b.input('x', F, [2, 3, 4]);
      b.op.Reshape(x, b.constant([-1, 4]));
      b.op.Reshape(x, b.constant([0, -1]));
      b.op.Flatten(x, { axis: 2 });
      b.op.Flatten(x, { axis: 0 });
      const t = b.op.Transpose(x, { perm: [2, 0, 1] });
      b.op.Transpose(x);
      b.op.Concat(x, b.op.Reshape(t, b.constant([2, 3, 4])), { axis: 1 });
      b.op.Expand(b.input('e', F, [3, 1]), b.constant([2, 1, 5]));
      b.op.Tile(x, b.constant([1, 2, 3]));
    },
  },
  {
    name: 'Slice (negative, step, clamped, axes), Split (attr/input/num_outputs)',
    opset: 18,
    build: (b) => {
      const x = b.input('x', F, [4, 10, 6]);
      b.op.Slice(x, b.constant([1]), b.constant([2 ** 62]), b.constant([1]));
      b.op.Slice(x, b.constant([0, -1]), b.constant([-1, -100]), b.constant([1, 2]), b.constant([1, -2]));
      b.op.Slice(x, b.constant([2]), b.constant([100]));
      b.op.Slice(x, b.constant([-3]), b.constant([9]), b.constant([1]), b.constant([3]));
      b.op.call('Split', [x, b.constant([3, 3])], { axis: -1 }, { outputs: 2 });
      b.op.call('Split', [x], { axis: 1, num_outputs: 3 }, { outputs: 3 });
      b.op.call('Split', [x], { axis: 0, num_outputs: 2 }, { outputs: 2 });
    },
  },
  {
    name: 'Split and Unsqueeze/Squeeze/Reduce with attribute axes (opset 11)',
    opset: 11,
    build: (b) => {
      const x = b.input('x', F, [4, 1, 6]);
      b.op.call('Split', [x], { axis: 2, split: [1, 5] }, { outputs: 2 });
      b.op.Unsqueeze(x, { axes: [0, -1] });
      b.op.Squeeze(x, { axes: [1] });
      b.op.Squeeze(x);
      b.op.ReduceMean(x, { axes: [-1] });
      b.op.ReduceSum(x, { axes: [0, 2], keepdims: 0 });
    },
  },
  {
    name: 'Squeeze/Unsqueeze with axes input, reductions with axes input, ArgMax',
    build: (b) => {
      const x = b.input('x', F, [3, 1, 5]);
      b.op.Squeeze(x, b.constant([1]));
      b.op.Unsqueeze(x, b.constant([1, 4]));
      b.op.ReduceMean(x, b.constant([-1]));
      b.op.ReduceSum(x, b.constant([0]), { keepdims: 0 });
      b.op.ReduceMax(x);
      b.op.ReduceMin(x, { keepdims: 0 });
      b.op.ReduceLogSumExp(x, b.constant([1, 2]));
      b.op.ReduceSum(x, b.constant([], { dims: [0] }), { noop_with_empty_axes: 1 });
      b.op.ArgMax(x, { axis: -1, keepdims: 0 });
      b.op.ArgMax(x, { axis: 2 });
    },
  },
  {
    name: 'Gather, GatherElements, GatherND, ScatterND, ScatterElements, OneHot',
    build: (b) => {
      const x = b.input('x', F, [5, 4, 3]);
      b.op.Gather(x, b.constant([[0, 1], [2, 3]].flat(), { dims: [2, 2] }), { axis: 1 });
      b.op.Gather(x, b.constant(1, { dims: [] }));
      const gi = b.constant(new Array(5 * 4 * 2).fill(0), { dims: [5, 4, 2] });
      b.op.GatherElements(x, gi, { axis: 2 });
      b.op.GatherND(x, b.constant([0, 1, 2, 0], { dims: [2, 2] }));
      b.op.ScatterND(x, b.constant([0, 1], { dims: [2, 1] }), b.input('u', F, [2, 4, 3]));
      b.op.ScatterElements(x, gi, b.input('u2', F, [5, 4, 2]), { axis: 2 });
      b.op.OneHot(b.constant([1, 2, 0], { dims: [3] }), b.constant(4, { dims: [] }), b.constant([0, 1], { dtype: F }), { axis: 0 });
    },
  },
  {
    name: 'Shape/Size/Range/ConstantOfShape/Constant/Cast/CastLike/Identity/Dropout/Pad/Trilu/CumSum',
    build: (b) => {
      const x = b.input('x', F, [2, 3, 4]);
      const s = b.op.Shape(x, { start: 1 });
      b.op.Shape(x, { end: -1 });
      b.op.Size(x);
      b.op.ConstantOfShape(s, { value: Tensor.from(I64, [1], [7]) });
      b.op.ConstantOfShape(b.op.Shape(x));
      b.op.Range(b.constant(1, { dims: [] }), b.constant(10, { dims: [] }), b.constant(3, { dims: [] }));
      b.op.Range(b.constant(0, { dtype: F, dims: [] }), b.constant(2, { dtype: F, dims: [] }), b.constant(0.5, { dtype: F, dims: [] }));
      b.op.Constant({ value_ints: [1, 2, 3] });
      b.op.Constant({ value_float: { float: 1 } });
      b.op.Constant({ value_floats: { floats: [1, 2] } });
      b.op.Constant({ value_int: 5 });
      b.op.Constant({ value: Tensor.from(F, [2, 2], [1, 2, 3, 4]) });
      const ci = b.op.Cast(x, { to: DataType.INT32 });
      b.op.CastLike(x, ci);
      b.op.Identity(x);
      b.op.call('Dropout', [x], {}, { outputs: 2 });
      b.op.Pad(x, b.constant([0, 1, 2, 0, 3, 0]));
      b.op.Pad(x, b.constant([1, 1]), b.constant([0], { dtype: F, dims: [] }), b.constant([-1]));
      b.op.Trilu(x, { upper: 0 });
      b.op.CumSum(x, b.constant(1, { dims: [] }));
    },
  },
  {
    name: 'Softmax, LogSoftmax, SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss, LayerNormalization, Einsum',
    build: (b) => {
      const x = b.input('x', F, [4, 10, 3]);
      const labels = b.input('labels', I64, [4, 3]);
      b.op.Softmax(x, { axis: 1 });
      const lp = b.op.LogSoftmax(x, { axis: 1 });
      b.op.call('SoftmaxCrossEntropyLoss', [x, labels], { ignore_index: -100 }, { outputs: 2 });
      b.op.SoftmaxCrossEntropyLoss(x, labels, { reduction: 'none' });
      b.op.SoftmaxCrossEntropyLoss(x, labels, { reduction: 'sum' });
      b.op.NegativeLogLikelihoodLoss(lp, labels, { reduction: 'mean' });
      b.op.NegativeLogLikelihoodLoss(lp, labels, { reduction: 'none' });
      b.op.call('LayerNormalization', [x, b.constant(new Array(3).fill(1), { dtype: F })], { axis: -1 }, { outputs: 3 });
      b.op.Einsum(x, b.input('w', F, [3, 5]), { equation: 'bsk,kn->bsn' });
      b.op.Einsum(x, { equation: 'ijk->kj' });
      b.op.Einsum(x, b.input('y', F, [4, 1, 3]), { equation: '...k,...k' });
    },
  },
  {
    name: 'RMSNormalization, RotaryEmbedding and Attention (opset 23)',
    opset: 23,
    build: (b) => {
      const x = b.input('x', F, [2, 5, 8]);
      b.op.RMSNormalization(x, b.constant(new Array(8).fill(1), { dtype: F }), { axis: -1 });
      const q4 = b.op.Transpose(b.op.Reshape(x, b.constant([2, 5, 2, 4])), { perm: [0, 2, 1, 3] });
      const cos = b.constant(new Array(16 * 2).fill(1), { dtype: F, dims: [16, 2] });
      const pos = b.constant([0, 1, 2, 3, 4, 0, 1, 2, 3, 4], { dims: [2, 5] });
      b.op.RotaryEmbedding(q4, cos, cos, pos);
      b.op.call('Attention', [q4, q4, q4], { is_causal: 1 }, { outputs: 1 });
      const kv = b.input('kv', F, [2, 1, 5, 4]);
      b.op.call('Attention', [q4, kv, kv, null, b.input('pk', F, [2, 1, 3, 4]), b.input('pv', F, [2, 1, 3, 4])], {}, { outputs: 3 });
      b.op.call('Attention', [x, x, x], { q_num_heads: 2, kv_num_heads: 2 }, { outputs: 1 });
    },
  },
];

describe('inferShapes agrees with onnxruntime-node', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const m = createModel({ opset: c.opset ?? 20 });
      c.build(new GraphBuilder(m.graph));
      const r = await compareWithOrt(m, { feeds: c.feeds });
      expect(r.mismatches).toEqual([]);
      expect(r.report.conflicts).toEqual([]);
      expect(r.report.failures).toEqual([]);
      expect(r.compared).toBeGreaterThanOrEqual(m.graph.nodes.length);
    });
  }

  it('GatherND with a leading index and Where on runtime labels', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const labels = b.input('labels', I64, [2, 6]);
    const keep = b.op.Equal(labels, b.constant(-100, { dims: [] }));
    b.op.Where(keep, b.constant(0, { dims: [] }), labels);
    const r = await compareWithOrt(m, { feeds: { labels: i64([2, 6], [1, 2, -100, 3, 4, 5, 6, 7, 8, 9, -100, 0]) } });
    expect(r.mismatches).toEqual([]);
  });
});
