/**
 * Gradient rules of the elementwise ops, reductions, softmax and matmul against central finite
 * differences, in float64 on onnxruntime-node's CPU EP. Erf has no float64 kernel in ORT, so it is
 * checked in float32 with a looser tolerance. Shape, gather and loss rules:
 * autodiff-rules-data.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { GraphBuilder, Value } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { runGradCases as run, type GradCase, type InputSpec } from './autodiff-util.js';

type Case = GradCase;

const x = (dims: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ name: 'x', dims, ...extra });
const a = (dims: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ name: 'a', dims, ...extra });
const bIn = (dims: number[], extra: Partial<InputSpec> = {}): InputSpec => ({ name: 'b', dims, ...extra });
const pos = { lo: 0.5, hi: 2 };

const elementwise: Case[] = [
  ['Add broadcast [2,3]+[3]', [a([2, 3]), bIn([3])], (b, [p, q]) => b.op.Add(p, q)],
  ['Add symbolic [B,S]+[X,S] (X=1 at runtime)', [a([2, 3], { decl: ['B', 'S'] }), bIn([1, 3], { decl: ['X', 'S'] })], (b, [p, q]) => b.op.Add(p, q)],
  ['Add symbolic rank mismatch [A,1,C]+[D,C]', [a([2, 1, 3], { decl: ['A', 1, 'C'] }), bIn([4, 3], { decl: ['D', 'C'] })], (b, [p, q]) => b.op.Add(p, q)],
  ['Add unknown shapes', [a([2, 3], { decl: [null, null] }), bIn([2, 1], { decl: [null, null] })], (b, [p, q]) => b.op.Add(p, q)],
  ['Sub broadcast [2,3]-[2,1]', [a([2, 3]), bIn([2, 1])], (b, [p, q]) => b.op.Sub(p, q)],
  ['Mul broadcast [2,1,3]*[4,1]', [a([2, 1, 3]), bIn([4, 1])], (b, [p, q]) => b.op.Mul(p, q)],
  ['Mul(x, x) accumulates', [x([5])], (b, [v]) => b.op.Mul(v, v)],
  ['Div broadcast', [a([2, 3]), bIn([3], pos)], (b, [p, q]) => b.op.Div(p, q)],
  ['Div large magnitudes', [a([2, 3], { lo: 1e3, hi: 1e4 }), bIn([2, 3], { lo: 1e3, hi: 1e4 })], (b, [p, q]) => b.op.Div(p, q)],
  ['Div small magnitudes', [a([2, 3], { lo: 1e-4, hi: 1e-3 }), bIn([2, 3], { lo: 1e-3, hi: 1e-2 })], (b, [p, q]) => b.op.Div(p, q)],
  ['Neg', [x([4])], (b, [v]) => b.op.Neg(v)],
  ['Pow(x, 2) constant exponent', [x([2, 3])], (b, [v]) => b.op.Pow(v, b.constant([2], { dtype: DataType.DOUBLE, dims: [] }))],
  ['Pow(x, 3) float32 exponent', [x([4])], (b, [v]) => b.op.Pow(v, b.constant([3], { dtype: DataType.FLOAT, dims: [] }))],
  ['Pow(x, -0.5)', [x([4], pos)], (b, [v]) => b.op.Pow(v, b.constant([-0.5], { dtype: DataType.DOUBLE, dims: [] }))],
  ['Pow general (both inputs)', [a([2, 3], pos), bIn([3])], (b, [p, q]) => b.op.Pow(p, q)],
  ['Sqrt', [x([5], pos)], (b, [v]) => b.op.Sqrt(v)],
  ['Sqrt large', [x([5], { lo: 1e6, hi: 1e8 })], (b, [v]) => b.op.Sqrt(v)],
  ['Reciprocal', [x([5], pos)], (b, [v]) => b.op.Reciprocal(v)],
  ['Exp', [x([5])], (b, [v]) => b.op.Exp(v)],
  ['Log', [x([5], pos)], (b, [v]) => b.op.Log(v)],
  ['Log small', [x([5], { lo: 1e-6, hi: 1e-5 })], (b, [v]) => b.op.Log(v), 1e-6, 1e-10],
  ['Sigmoid', [x([6], { lo: -4, hi: 4 })], (b, [v]) => b.op.Sigmoid(v)],
  ['Sigmoid saturated', [x([6], { lo: 8, hi: 20 })], (b, [v]) => b.op.Sigmoid(v)],
  ['Tanh', [x([6], { lo: -3, hi: 3 })], (b, [v]) => b.op.Tanh(v)],
  ['Sin, Cos', [x([6], { lo: -3, hi: 3 })], (b, [v]) => b.op.Cos(b.op.Sin(v))],
  ['Abs', [x([6])], (b, [v]) => b.op.Abs(v)],
  ['Relu', [x([6])], (b, [v]) => b.op.Relu(v)],
  ['Identity', [x([3])], (b, [v]) => b.op.Identity(v)],
  ['Where(c, a, b) broadcast', [{ name: 'c', dims: [2, 3], type: DataType.BOOL, data: [1, 0, 1, 0, 0, 1] }, a([3]), bIn([2, 1])], (b, [c, p, q]) => b.op.Where(c, p, q)],
  ['Where with scalar constant', [{ name: 'c', dims: [4], type: DataType.BOOL, data: [1, 0, 1, 0] }, a([4])], (b, [c, p]) => b.op.Where(c, p, b.constant([-3], { dtype: DataType.DOUBLE, dims: [] }))],
  ['Cast double→float→double (float32 rounding)', [x([4])], (b, [v]) => b.op.Cast(b.op.Mul(b.op.Cast(v, { to: DataType.FLOAT }), b.op.Cast(v, { to: DataType.FLOAT })), { to: DataType.DOUBLE }), 1e-3, 1e-3],
  ['Sum of three, broadcast', [a([2, 3]), bIn([3]), { name: 'c', dims: [2, 1] }], (b, [p, q, r]) => b.op.Sum(p, q, r)],
  ['Max, Min', [a([2, 3]), bIn([3])], (b, [p, q]) => b.op.Add(b.op.Max(p, q), b.op.Min(p, q))],
  ['Erf (float32; ORT has no float64 Erf)', [x([6], { type: DataType.FLOAT })], (b, [v]) => b.op.Erf(v), 2e-2, 1e-2],
];

const reductions: Case[] = [
  ['ReduceSum axes input keepdims=0', [x([2, 3, 4])], (b, [v]) => b.op.ReduceSum(v, b.constant([1]), { keepdims: 0 })],
  ['ReduceSum negative axes keepdims=1', [x([2, 3, 4])], (b, [v]) => b.op.ReduceSum(v, b.constant([-1, 0]), { keepdims: 1 })],
  ['ReduceSum all', [x([2, 3])], (b, [v]) => b.op.ReduceSum(v, { keepdims: 0 })],
  ['ReduceSum runtime axes', [x([2, 3, 4]), { name: 'ax', dims: [1], type: DataType.INT64, data: [-2] }], (b, [v, ax]) => b.op.ReduceSum(v, ax, { keepdims: 0 })],
  ['ReduceMean(-1) keepdims symbolic (RMSNorm)', [x([2, 3, 4], { decl: ['B', 'S', 4] })], (b, [v]) => b.op.ReduceMean(v, b.constant([-1]), { keepdims: 1 })],
  ['ReduceMean all keepdims=0', [x([2, 3])], (b, [v]) => b.op.ReduceMean(v, { keepdims: 0 })],
  ['ReduceMax keepdims=0', [x([2, 3, 4])], (b, [v]) => b.op.ReduceMax(v, b.constant([1]), { keepdims: 0 })],
  ['ReduceMax ties split evenly', [x([2, 2], { data: [1, 1, 0, 2] })], (b, [v]) => b.op.Mul(b.op.ReduceMax(v, b.constant([1]), { keepdims: 0 }), b.constant([1, 1], { dtype: DataType.DOUBLE }))],
  ['ReduceLogSumExp', [x([2, 5], { lo: -30, hi: 30 })], (b, [v]) => b.op.ReduceLogSumExp(v, b.constant([1]), { keepdims: 1 })],
  ['Softmax axis -1', [x([2, 5], { lo: -3, hi: 3 })], (b, [v]) => b.op.Softmax(v, { axis: -1 })],
  ['Softmax axis 1 of rank 3, large logits', [x([2, 3, 4], { lo: -50, hi: 50 })], (b, [v]) => b.op.Softmax(v, { axis: 1 })],
  ['LogSoftmax symbolic', [x([3, 5], { decl: ['N', 'C'] })], (b, [v]) => b.op.LogSoftmax(v, { axis: -1 })],
];

const matmuls: Case[] = [
  ['MatMul 2-D', [a([3, 4]), bIn([4, 5])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul batched A x 2-D weight (Gemm path)', [a([2, 3, 4], { decl: ['B', 'S', 4] }), bIn([4, 5])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul broadcast batch [2,1,3,4]x[5,4,2]', [a([2, 1, 3, 4]), bIn([5, 4, 2])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul 2-D x batched', [a([3, 4]), bIn([2, 4, 5])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul symbolic batch both', [a([2, 3, 4], { decl: ['B', 'M', 'K'] }), bIn([2, 4, 5], { decl: ['B', 'K', 'N'] })], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul 1-D x 2-D', [a([4]), bIn([4, 5])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul batched x 1-D', [a([2, 3, 4]), bIn([4])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul 1-D x 1-D', [a([4]), bIn([4])], (b, [p, q]) => b.op.MatMul(p, q)],
  ['MatMul through Transpose (tied lm_head)', [a([2, 3, 4]), bIn([5, 4])], (b, [p, q]) => b.op.MatMul(p, b.op.Transpose(q, { perm: [1, 0] }))],
  ['Gemm', [a([3, 4]), bIn([4, 5]), { name: 'c', dims: [5] }], (b, [p, q, r]) => b.op.Gemm(p, q, r)],
  ['Gemm transA transB alpha beta', [a([4, 3]), bIn([5, 4]), { name: 'c', dims: [3, 1] }], (b, [p, q, r]) => b.op.Gemm(p, q, r, { transA: 1, transB: 1, alpha: 0.5, beta: 2 })],
  ['Gemm transA', [a([4, 3]), bIn([4, 5])], (b, [p, q]) => b.op.Gemm(p, q, { transA: 1, alpha: 1.5 })],
  ['Gemm transB', [a([3, 4]), bIn([5, 4])], (b, [p, q]) => b.op.Gemm(p, q, { transB: 1 })],
];


describe('autodiff rules vs finite differences (float64)', () => {
  describe('elementwise', () => run(elementwise));
  describe('reductions and softmax', () => run(reductions));
  describe('MatMul and Gemm', () => run(matmuls));
});
