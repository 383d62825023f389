/**
 * Element types of values, for deciding what is differentiable. Uses `value.type` (from the model
 * or shape inference) and, where a type is missing, a small propagation over the producers.
 */
import { DataType } from '../onnx/schema.js';
import type { Value } from '../ir/graph.js';

const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

/** True for the element types gradients flow through. */
export function isFloatType(t: number | undefined): boolean {
  return t !== undefined && FLOATS.has(t);
}

const BOOL_OPS = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

/** Element type of `v`, or undefined if it cannot be determined. */
export function elemTypeOf(v: Value, memo = new Map<Value, number | undefined>()): number | undefined {
  const known = v.tensorType?.elemType;
  if (known) return known;
  if (v.initializer) return v.initializer.dtype;
  if (memo.has(v)) return memo.get(v);
  memo.set(v, undefined); // cycle guard
  const t = propagate(v, memo);
  memo.set(v, t);
  return t;
}

function propagate(v: Value, memo: Map<Value, number | undefined>): number | undefined {
  const n = v.producer;
  if (!n || (n.domain !== '' && n.domain !== 'ai.onnx')) return undefined;
  if (BOOL_OPS.has(n.opType)) return DataType.BOOL;
  if (INT64_OPS.has(n.opType)) return DataType.INT64;
  switch (n.opType) {
    case 'Cast': return n.attrInt('to');
    case 'CastLike': return n.inputs[1] ? elemTypeOf(n.inputs[1], memo) : undefined;
    case 'Constant': {
      const t = n.attrTensor('value');
      if (t) return t.dtype;
      if (n.attr('value_float') || n.attr('value_floats')) return DataType.FLOAT;
      return DataType.INT64;
    }
    case 'ConstantOfShape': return n.attrTensor('value')?.dtype ?? DataType.FLOAT;
    case 'EyeLike': case 'RandomNormalLike': case 'RandomUniformLike': break;
    case 'TopK': if (v.producerIndex === 1) return DataType.INT64; break;
    case 'Where': return n.inputs[1] ? elemTypeOf(n.inputs[1], memo) : undefined;
    case 'SoftmaxCrossEntropyLoss': case 'NegativeLogLikelihoodLoss': case 'Gather': case 'GatherElements': case 'GatherND':
    case 'Expand': case 'Reshape': case 'Pad': case 'Slice': case 'Tile':
      return n.inputs[0] ? elemTypeOf(n.inputs[0], memo) : undefined;
  }
  for (const i of n.inputs) if (i) return elemTypeOf(i, memo);
  return undefined;
}
