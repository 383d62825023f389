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

/**
 * A tensor of zeros made from a shape: `Expand(c, shape)` of a one-element constant 0, or
 * `ConstantOfShape(shape)` of value 0 (its default). Returns the zeros' element type and the
 * shape operand, or why `v` is not such a tensor. The embedding gradient's ScatterND starts from
 * one (src/autodiff/rules/gather.ts); passes/scatter-add-into.ts and the webgpu glue ScatterND
 * (src/runtime/webgpu/glue.ts) recognise it by this one rule.
 */
export function zerosOfShape(v: Value | null | undefined): { ok: true; dtype: number; shape: Value | null } | { ok: false; why: string } {
  const p = v?.producer;
  const what = `'${v?.name}'`;
  const onnx = p && (p.domain === '' || p.domain === 'ai.onnx');
  if (onnx && p.opType === 'Expand') {
    const t = constantTensor(p.inputs[0]);
    const zero = t && t.size === 1 && constantNumbers(p.inputs[0], 1)?.[0] === 0;
    return zero ? { ok: true, dtype: t.dtype, shape: p.inputs[1] ?? null } : { ok: false, why: `${what} expands '${p.inputs[0]?.name}', not a constant scalar 0` };
  }
  if (onnx && p.opType === 'ConstantOfShape') {
    const t = p.attrTensor('value');
    if (t && !(t.size === 1 && t.toNumbers()[0] === 0)) return { ok: false, why: `${what} is a ConstantOfShape of a value other than 0` };
    return { ok: true, dtype: t?.dtype ?? DataType.FLOAT, shape: p.inputs[0] ?? null };
  }
  return { ok: false, why: `${what} is not made by Expand or ConstantOfShape of a constant 0` };
}
