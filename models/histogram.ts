/**
 * Op histograms for comparing a builder graph with a real export, "shape plumbing aside".
 *
 * The rule: a node is shape plumbing when it is a `Constant`, or when every output is an int64
 * tensor. Int64 tensors in these graphs are shapes, axes, indices, positions and labels: the
 * exporter computes them with Shape/Gather/Concat/Unsqueeze/Slice/Range/Cast/Reshape chains whose
 * form depends on how the tracer saw each size (constant-folded or symbolic), while the float and
 * bool computation (what fusions match, and what the loss depends on) must be identical. Element
 * types come from the model's declared types, else from a small forward propagation over the ops
 * that occur in Qwen2 graphs.
 */
import { DataType } from '../src/onnx/schema.js';
import type { Model, Node, Value } from '../src/ir/graph.js';

/** Ops whose output type is always the given one. */
const FIXED: Record<string, number> = {
  Shape: DataType.INT64, Size: DataType.INT64, NonZero: DataType.INT64, ArgMax: DataType.INT64, ArgMin: DataType.INT64,
  Equal: DataType.BOOL, Less: DataType.BOOL, LessOrEqual: DataType.BOOL, Greater: DataType.BOOL,
  GreaterOrEqual: DataType.BOOL, Not: DataType.BOOL, And: DataType.BOOL, Or: DataType.BOOL, Xor: DataType.BOOL,
  IsNaN: DataType.BOOL, IsInf: DataType.BOOL,
};

/** Element type of every value reachable in the main graph (undefined where unknown). */
export function elementTypes(model: Model): Map<Value, number | undefined> {
  const types = new Map<Value, number | undefined>();
  const g = model.graph;
  for (const v of [...g.inputs, ...g.initializers]) types.set(v, v.tensorType?.elemType ?? v.initializer?.dtype);
  for (const n of g.nodes) {
    const derived = outputType(n, (v) => (v ? types.get(v) ?? v.tensorType?.elemType : undefined));
    n.outputs.forEach((o, i) => types.set(o, o.tensorType?.elemType || (i === 0 ? derived : undefined)));
  }
  return types;
}

function outputType(n: Node, t: (v: Value | null) => number | undefined): number | undefined {
  if (n.domain !== '' && n.domain !== 'ai.onnx') return t(n.inputs[0] ?? null);
  if (FIXED[n.opType] !== undefined) return FIXED[n.opType];
  switch (n.opType) {
    case 'Cast': return n.attrInt('to');
    case 'CastLike': return t(n.inputs[1] ?? null);
    case 'Constant': {
      const v = n.attrTensor('value');
      if (v) return v.dtype;
      if (n.attr('value_int') || n.attr('value_ints')) return DataType.INT64;
      return DataType.FLOAT;
    }
    case 'ConstantOfShape': return n.attrTensor('value')?.dtype ?? DataType.FLOAT;
    case 'Where': return t(n.inputs[1] ?? null);
    default: return t(n.inputs[0] ?? null);
  }
}

/** True if `n` only computes shapes/indices (see the module comment for the rule). */
export function isShapePlumbing(n: Node, types: Map<Value, number | undefined>): boolean {
  if (n.opType === 'Constant') return true;
  return n.outputs.length > 0 && n.outputs.every((o) => types.get(o) === DataType.INT64);
}

/** `domain::op` -> count over the main graph, optionally without shape plumbing. */
export function opHistogram(model: Model, opts: { ignoreShapePlumbing?: boolean } = {}): Record<string, number> {
  const types = opts.ignoreShapePlumbing ? elementTypes(model) : undefined;
  const h: Record<string, number> = {};
  for (const n of model.graph.nodes) {
    if (types && isShapePlumbing(n, types)) continue;
    h[n.qualifiedOp] = (h[n.qualifiedOp] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(h).sort(([a], [b]) => a.localeCompare(b)));
}

/** Ops whose counts differ: op -> [a, b]. Empty when the histograms are equal. */
export function histogramDiff(a: Record<string, number>, b: Record<string, number>): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if ((a[k] ?? 0) !== (b[k] ?? 0)) out[k] = [a[k] ?? 0, b[k] ?? 0];
  return out;
}
