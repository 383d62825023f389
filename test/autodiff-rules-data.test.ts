/**
 * Gradient rules of the data-movement ops, the gathers and the losses against central finite
 * differences in float64 (onnxruntime-node CPU EP), including symbolic shapes, repeated and
 * negative indices, and ignore_index rows.
 */
import { describe, expect, it } from 'vitest';
import type { GraphBuilder, Value } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { gradCheck, runGradCases as run, type GradCase, type InputSpec } from './autodiff-util.js';

type Case = GradCase;

const x = (dims: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ name: 'x', dims, ...extra });
const ints = (name: string, dims: number[], data: number[]): InputSpec => ({ name, dims, data, type: DataType.INT64 });
const D = DataType.DOUBLE;

const shapes: Case[] = [
  ['Reshape', [x([2, 6], { decl: ['B', 6] })], (b, [v]) => b.op.Reshape(v, b.constant([-1, 3, 2]))],
  ['Flatten', [x([2, 3, 2])], (b, [v]) => b.op.Flatten(v, { axis: 2 })],
  ['Squeeze, Unsqueeze', [x([2, 1, 3])], (b, [v]) => b.op.Unsqueeze(b.op.Squeeze(v, b.constant([1])), b.constant([0]))],
  ['Transpose perm', [x([2, 3, 4])], (b, [v]) => b.op.Transpose(v, { perm: [2, 0, 1] })],
  ['Transpose default', [x([2, 3, 4])], (b, [v]) => b.op.Transpose(v)],
  ['Expand [3,1] to [2,3,4]', [x([3, 1])], (b, [v]) => b.op.Expand(v, b.constant([2, 3, 4]))],
  ['Expand symbolic', [x([3, 1], { decl: ['S', 1] })], (b, [v]) => b.op.Expand(v, b.op.Concat(b.op.Shape(v, { start: 0, end: 1 }), b.constant([4]), { axis: 0 }))],
  ['Concat three, axis 1, symbolic', [
    { name: 'a', dims: [2, 1], decl: ['B', 'P'] }, { name: 'b', dims: [2, 3], decl: ['B', 'Q'] }, { name: 'c', dims: [2, 2], decl: ['B', 'R'] },
  ], (b, [p, q, r]) => b.op.Concat(p, q, r, { axis: 1 })],
  ['Concat axis -1 with a constant', [x([2, 3])], (b, [v]) => b.op.Concat(b.constant([0, 0], { dtype: D, dims: [2, 1] }), v, { axis: -1 })],
  ['Slice negative start, clamped end, symbolic', [x([3, 6], { decl: ['A', 'B'] })], (b, [v]) => b.op.Slice(v, b.constant([-4]), b.constant([1000]), b.constant([1]))],
  ['Slice two axes, no axes input', [x([4, 5])], (b, [v]) => b.op.Slice(v, b.constant([1, 0]), b.constant([3, -1]))],
  ['Slice label shift [:, :-1]', [x([2, 5, 3], { decl: ['B', 'S', 3] })], (b, [v]) => b.op.Slice(v, b.constant([0]), b.constant([-1]), b.constant([1]), b.constant([1]))],
  ['Slice int32 starts, empty result on one row', [x([3, 4])], (b, [v]) => b.op.Slice(v, b.constant([2], { dtype: DataType.INT32 }), b.constant([9], { dtype: DataType.INT32 }), b.constant([1], { dtype: DataType.INT32 }))],
  ['Split, one output unused', [x([2, 6])], (b, [v]) => b.op.call('Split', [v, b.constant([2, 4])], { axis: 1 }, { outputs: 2 })[1]],
  ['Split, both outputs', [x([2, 6])], (b, [v]) => {
    const [p, q] = b.op.call('Split', [v], { axis: 1, num_outputs: 2 }, { outputs: 2 });
    return b.op.Mul(p, q);
  }],
  ['Pad positive and negative with axes', [x([3, 4])], (b, [v]) => b.op.Pad(v, b.constant([1, -1, 0, 2]), null, b.constant([0, 1]))],
  ['Pad all axes', [x([2, 3])], (b, [v]) => b.op.Pad(v, b.constant([0, 1, 1, 0]), b.constant([5], { dtype: D, dims: [] }))],
  ['Trilu lower, k=-1', [x([3, 3])], (b, [v]) => b.op.Trilu(v, b.constant(-1, { dims: [] }), { upper: 0 })],
  ['RoPE rotate-half (Slice, Neg, Concat)', [x([2, 3, 8], { decl: ['B', 'S', 8] }), { name: 'cos', dims: [3, 8] }], (b, [v, c]) => {
    const x1 = b.op.Slice(v, b.constant([0]), b.constant([4]), b.constant([-1]));
    const x2 = b.op.Slice(v, b.constant([4]), b.constant([2 ** 53]), b.constant([-1]));
    return b.op.Add(b.op.Mul(v, c), b.op.Concat(b.op.Neg(x2), x1, { axis: -1 }));
  }],
];

const gathers: Case[] = [
  ['Gather axis 0 (embedding) repeated and negative ids', [x([5, 3]), ints('i', [2, 3], [0, 2, 2, -1, 4, 0])], (b, [w, i]) => b.op.Gather(w, i, { axis: 0 })],
  ['Gather axis 0 symbolic ids', [x([5, 3]), { ...ints('i', [2, 4], [1, 1, 1, 3, 0, 2, 4, 4]), decl: ['B', 'S'] }], (b, [w, i]) => b.op.Gather(w, i)],
  ['Gather axis 1', [x([2, 5, 3]), ints('i', [4], [0, 2, 2, -1])], (b, [w, i]) => b.op.Gather(w, i, { axis: 1 })],
  ['Gather scalar index', [x([4, 3]), ints('i', [], [2])], (b, [w, i]) => b.op.Gather(w, i, { axis: 0 })],
  ['Gather int32 indices', [x([4, 3]), { name: 'i', dims: [3], type: DataType.INT32, data: [3, 3, 0] }], (b, [w, i]) => b.op.Gather(w, i, { axis: 0 })],
  ['GatherElements axis 1 repeated', [x([3, 4]), ints('i', [3, 2], [0, 0, 3, -1, 1, 2])], (b, [w, i]) => b.op.GatherElements(w, i, { axis: 1 })],
  ['GatherND', [x([3, 4, 2]), ints('i', [3, 2], [0, 1, 2, 3, 0, 1])], (b, [w, i]) => b.op.GatherND(w, i)],
];

const labels = [1, -100, 4, 0, 2, -100];
const losses: Case[] = [
  ['SCE mean, ignore_index rows', [x([6, 5]), ints('l', [6], labels)], (b, [s, l]) => b.op.SoftmaxCrossEntropyLoss(s, l, { ignore_index: -100 })],
  ['SCE mean, large logits', [x([6, 5], { lo: -60, hi: 60 }), ints('l', [6], labels)], (b, [s, l]) => b.op.SoftmaxCrossEntropyLoss(s, l, { ignore_index: -100 })],
  ['SCE sum with class weights', [x([6, 5]), ints('l', [6], labels), { name: 'w', dims: [5], lo: 0.5, hi: 2, wrt: false }],
    (b, [s, l, w]) => b.op.SoftmaxCrossEntropyLoss(s, l, w, { ignore_index: -100, reduction: 'sum' })],
  ['SCE mean with class weights', [x([6, 5]), ints('l', [6], labels), { name: 'w', dims: [5], lo: 0.5, hi: 2, wrt: false }],
    (b, [s, l, w]) => b.op.SoftmaxCrossEntropyLoss(s, l, w, { ignore_index: -100 })],
  ['SCE none, [N, C, d] layout', [x([2, 5, 3]), ints('l', [2, 3], labels)], (b, [s, l]) => b.op.SoftmaxCrossEntropyLoss(s, l, { ignore_index: -100, reduction: 'none' })],
  ['SCE without ignore_index, symbolic', [x([3, 5], { decl: ['N', 'C'] }), ints('l', [3], [4, 0, 1])], (b, [s, l]) => b.op.SoftmaxCrossEntropyLoss(s, l)],
  ['SCE log_prob output used too', [x([6, 5]), ints('l', [6], labels)], (b, [s, l]) => {
    const [loss, logp] = b.op.call('SoftmaxCrossEntropyLoss', [s, l], { ignore_index: -100 }, { outputs: 2 });
    return b.op.Add(loss, b.op.ReduceSum(b.op.Mul(logp, logp), { keepdims: 0 }));
  }],
  ['SCE log_prob exists, unused', [x([6, 5]), ints('l', [6], labels)], (b, [s, l]) => b.op.call('SoftmaxCrossEntropyLoss', [s, l], { ignore_index: -100 }, { outputs: 2 })[0]],
  ['LogSoftmax + NLL mean, ignore_index', [x([6, 5]), ints('l', [6], labels)], (b, [s, l]) => b.op.NegativeLogLikelihoodLoss(b.op.LogSoftmax(s, { axis: 1 }), l, { ignore_index: -100 })],
  ['NLL sum with weights', [x([6, 5]), ints('l', [6], labels), { name: 'w', dims: [5], lo: 0.5, hi: 2, wrt: false }],
    (b, [s, l, w]) => b.op.NegativeLogLikelihoodLoss(s, l, w, { ignore_index: -100, reduction: 'sum' })],
  ['NLL none, [N, C, d]', [x([2, 5, 3]), ints('l', [2, 3], [0, 4, 2, 1, 1, 3])], (b, [s, l]) => b.op.NegativeLogLikelihoodLoss(s, l, { reduction: 'none' })],
];


describe('autodiff rules vs finite differences (float64)', () => {
  describe('data movement', () => run(shapes));
  describe('gathers (scatter-add gradients)', () => run(gathers));
  describe('losses', () => run(losses));

  it('gives ignored rows exactly zero gradient', async () => {
    const r = await gradCheck([x([6, 5]), ints('l', [6], labels)], (b, [s, l]) => b.op.SoftmaxCrossEntropyLoss(s, l, { ignore_index: -100 }));
    // rows 1 and 5 are ignored: the finite differences there are 0 and so must be the gradient
    expect(r.errors.x).toBeLessThan(1e-6);
    const g = r.analytic.x;
    for (const row of [1, 5]) expect(g.slice(row * 5, row * 5 + 5)).toEqual([0, 0, 0, 0, 0]);
    expect(g.slice(0, 5).some((v) => v !== 0)).toBe(true);
  });
});
