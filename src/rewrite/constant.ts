/** Constant values: initializers that are not graph inputs, and outputs of Constant nodes. */
import { DataType } from '../onnx/schema.js';
import type { Node, Value } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';

/**
 * The tensor a value is known to hold, or undefined. An initializer that is also a graph input
 * can be overridden by the caller and is not a constant. Reading the tensor's values is left to
 * the caller (check `size` first: large weights may be external).
 */
export function constantTensor(v: Value | null | undefined): Tensor | undefined {
  if (!v) return undefined;
  if (v.initializer) return v.isGraphInput() ? undefined : v.initializer;
  const n = v.producer;
  if (n && n.opType === 'Constant' && (n.domain === '' || n.domain === 'ai.onnx')) return constantNodeTensor(n);
  return undefined;
}

/** The tensor of a Constant node (value, value_float(s), value_int(s)); undefined for strings/sparse. */
export function constantNodeTensor(n: Node): Tensor | undefined {
  for (const a of n.attributes.values()) {
    if (a.refAttrName) return undefined;
    switch (a.name) {
      case 'value': return a.type === 'TENSOR' ? (a.value as Tensor) : undefined;
      case 'value_float': return Tensor.from(DataType.FLOAT, [], [Number(a.value)]);
      case 'value_floats': return Tensor.from(DataType.FLOAT, [(a.value as number[]).length], a.value as number[]);
      case 'value_int': return Tensor.from(DataType.INT64, [], [BigInt(a.value)]);
      case 'value_ints': return Tensor.from(DataType.INT64, [(a.value as bigint[]).length], (a.value as bigint[]).map((x) => BigInt(x)));
      default: return undefined;
    }
  }
  return undefined;
}

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

/**
 * A float initializer of more than one element may be a trainable parameter (autodiff turns
 * such initializers into inputs): cleanup passes must not fold it into a copy or merge it with
 * an equal-valued one, which would drop or tie the parameter.
 */
export function isParameterLike(v: Value): boolean {
  const t = v.initializer;
  return t !== undefined && FLOAT_TYPES.has(t.dtype) && t.size > 1;
}

/** A constant's values as numbers when it has at most `limit` elements. */
export function constantNumbers(v: Value | null | undefined, limit = 1024): number[] | undefined {
  const t = constantTensor(v);
  if (!t || t.size > limit) return undefined;
  try {
    return t.toNumbers();
  } catch {
    return undefined;
  }
}
