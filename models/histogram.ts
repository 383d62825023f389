/**
 * Op histograms for comparing a builder graph with a real export, "shape plumbing aside".
 *
 * The rule: a node is shape plumbing when it is a `Constant`, or when every output is an int64
 * tensor. Int64 tensors in these graphs are shapes, axes, indices, positions and labels: the
 * exporter computes them with Shape/Gather/Concat/Unsqueeze/Slice/Range/Cast/Reshape chains whose
 * form depends on how the tracer saw each size (constant-folded or symbolic), while the float and
 * bool computation (what fusions match, and what the loss depends on) must be identical. Element
 * types come from the model's declared types, else from the producers (src/autodiff/dtype.ts).
 */
import { DataType } from '../src/onnx/schema.js';
import type { Model, Node, Value } from '../src/ir/graph.js';
import { elemTypeOf } from '../src/autodiff/dtype.js';

/** Element type of every value reachable in the main graph (undefined where unknown). */
export function elementTypes(model: Model): Map<Value, number | undefined> {
  const memo = new Map<Value, number | undefined>();
  const types = new Map<Value, number | undefined>();
  const g = model.graph;
  for (const v of [...g.inputs, ...g.initializers, ...g.nodes.flatMap((n) => n.outputs)]) types.set(v, elemTypeOf(v, memo));
  return types;
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
