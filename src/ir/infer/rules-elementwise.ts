/** Inference rules for elementwise ops: unary, broadcasting binary/variadic, comparisons, Where. */
import { DataType } from '../../onnx/schema.js';
import type { Node } from '../graph.js';
import type { ValueType } from '../types.js';
import { broadcastShapes, tt, type InferContext, type InferRule } from './context.js';

/** Output 0 has the type of input 0. */
export const sameAsInput0: InferRule = (_n, c) => {
  const t = c.type(0);
  return [t ? tt(t.elemType, t.shape?.slice()) : undefined];
};

/** Output 0 has input 0's shape and a fixed element type. */
function shapeOf0As(elem: number): InferRule {
  return (_n, c) => [c.elem(0) === undefined && !c.shape(0) ? undefined : tt(elem, c.shape(0)?.slice())];
}

function firstElem(c: InferContext, inputs: number[]): number {
  for (const i of inputs) {
    const e = c.elem(i);
    if (e) return e;
  }
  return 0;
}

/** Broadcast the given inputs; the element type comes from `elemFrom` (or is fixed). */
function broadcast(inputs: ((n: Node) => number[]) | number[], elem: number | ((c: InferContext) => number)): InferRule {
  return (n, c) => {
    const idx = typeof inputs === 'function' ? inputs(n) : inputs;
    const e = typeof elem === 'number' ? elem : elem(c);
    const shape = broadcastShapes(idx.map((i) => c.shape(i)));
    return [e || shape ? tt(e, shape) : undefined];
  };
}

const allInputs = (n: Node): number[] => n.inputs.map((_, i) => i);

const UNARY = [
  'Sqrt', 'Reciprocal', 'Neg', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Cos', 'Sin', 'Tan', 'Abs', 'Erf', 'Relu',
  'Floor', 'Ceil', 'Round', 'Sign', 'Softplus', 'Softsign', 'Gelu', 'Elu', 'Selu', 'Celu', 'LeakyRelu',
  'HardSigmoid', 'HardSwish', 'Mish', 'ThresholdedRelu', 'Shrink', 'Acos', 'Asin', 'Atan', 'Cosh', 'Sinh',
  'Acosh', 'Asinh', 'Atanh', 'Not', 'BitwiseNot', 'Clip', 'Identity', 'Softmax', 'LogSoftmax', 'Hardmax',
  'CumSum', 'Trilu', 'LpNormalization', 'MeanVarianceNormalization', 'RMSNormalization', 'RotaryEmbedding',
  'ScatterND', 'ScatterElements', 'Scatter', 'ReverseSequence',
];
const BINARY_SAME = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'BitShift', 'PRelu', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor'];
const COMPARE = ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'];
const VARIADIC = ['Max', 'Min', 'Sum', 'Mean'];

/** Rules keyed by op type (default ONNX domain). */
export const ELEMENTWISE_RULES: Record<string, InferRule> = {
  ...Object.fromEntries(UNARY.map((op) => [op, sameAsInput0])),
  ...Object.fromEntries(BINARY_SAME.map((op) => [op, broadcast([0, 1], (c) => c.elem(0) ?? 0)])),
  ...Object.fromEntries(COMPARE.map((op) => [op, broadcast([0, 1], DataType.BOOL)])),
  ...Object.fromEntries(VARIADIC.map((op) => [op, broadcast(allInputs, (c) => firstElem(c, [0]))])),
  IsNaN: shapeOf0As(DataType.BOOL),
  IsInf: shapeOf0As(DataType.BOOL),
  Where: broadcast([0, 1, 2], (c) => firstElem(c, [1, 2])),
  Dropout: (n, c) => {
    const t = c.type(0);
    const out: (ValueType | undefined)[] = [t ? tt(t.elemType, t.shape?.slice()) : undefined];
    if (n.outputs.length > 1) out.push(tt(DataType.BOOL, t?.shape?.slice()));
    return out;
  },
};
