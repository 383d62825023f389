/**
 * constant-fold — fold shape and index subgraphs: a node of the default domain whose inputs are
 * all constants (initializers that are not graph inputs, Constant nodes, values folded earlier
 * in the sweep) is evaluated in JS (src/rewrite/eval.ts: Shape/Size of a fully static shape,
 * Gather, Concat, Unsqueeze, Squeeze, Slice, Cast, Add/Sub/Mul/Div, Neg, Range, Equal/Less/Greater,
 * Not, Where, Expand, ConstantOfShape, Reshape, Identity) and replaced by an initializer; Constant
 * nodes become initializers. Only tensors of at most FOLD_LIMIT elements are read or made, so
 * large weights are never touched, and float initializers of more than one element (possible
 * parameters) are not read at all. Function bodies cannot hold initializers: there (and for
 * graph outputs) the result is a Constant node.
 */
import { GraphBuilder } from '../src/ir/builder.js';
import { commit } from '../src/ir/commit.js';
import { Value, type Graph, type Model, type Node } from '../src/ir/graph.js';
import type { Tensor } from '../src/ir/tensor.js';
import { tensorType } from '../src/ir/types.js';
import { constantNodeTensor, constantTensor, isParameterLike } from '../src/rewrite/constant.js';
import { evalNode } from '../src/rewrite/eval.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { graphsOf } from '../src/rewrite/rule.js';
import { nonZero } from './dce.js';

/** The constant-folding pass; counts folded nodes per op type. */
export const constantFold: Pass = {
  name: 'constant-fold',
  run(model: Model): PassResult {
    const counts: Record<string, number> = {};
    for (const g of graphsOf(model)) foldGraph(g, counts);
    return { modified: Object.keys(nonZero(counts)).length > 0, counts: nonZero(counts) };
  },
};

function isFunctionBody(g: Graph): boolean {
  let r = g;
  while (r.owner) r = r.owner.graph;
  return r !== r.model.graph;
}

function foldGraph(g: Graph, counts: Record<string, number>): void {
  const inFunction = isFunctionBody(g);
  const known = new Map<Value, Tensor>();
  // Parameter-like initializers (float, > 1 element) are not folded into copies: training needs them.
  const constOf = (v: Value | null): Tensor | undefined =>
    v ? known.get(v) ?? (isParameterLike(v) ? undefined : constantTensor(v)) : undefined;
  const folds: { node: Node; results: Tensor[] }[] = [];
  for (const n of g.nodes) {
    if ((n.domain !== '' && n.domain !== 'ai.onnx') || n.subgraphs().length) continue;
    let results: Tensor[] | undefined;
    if (n.opType === 'Constant') {
      const t = constantNodeTensor(n);
      if (t) known.set(n.outputs[0], t);
      // Already as constant as it gets where initializers are not allowed (or for graph outputs).
      if (!t || inFunction || n.outputs[0].isGraphOutput()) continue;
      results = [t];
    } else {
      const ins = n.inputs.map((v) => (v ? constOf(v) : undefined));
      const shapeOnly = n.opType === 'Shape' || n.opType === 'Size';
      if (!shapeOnly && n.inputs.some((v, i) => v && !ins[i])) continue;
      results = evalNode(n, ins, n.inputs[0]?.tensorType?.shape);
      if (!results || results.length !== n.outputs.length) continue;
    }
    n.outputs.forEach((o, i) => known.set(o, results![i]));
    folds.push({ node: n, results });
  }
  if (!folds.length) return;
  const b = new GraphBuilder(g, { staged: true, tag: 'constant-fold' });
  const replace: [Value, Value][] = [];
  const made: Value[] = [];
  for (const { node, results } of folds) {
    node.outputs.forEach((o, i) => {
      const t = results[i];
      let to: Value;
      if (inFunction || o.isGraphOutput()) {
        to = b.op.Constant({ value: t });
      } else {
        to = new Value(g, g.model.freshName(o.name || 'folded'));
        to.initializer = t;
        made.push(to);
      }
      to.type = tensorType(t.dtype, t.dims.slice());
      replace.push([o, to]);
    });
    counts[node.opType] = (counts[node.opType] ?? 0) + 1;
  }
  g.initializers.push(...made);
  try {
    commit(g, { remove: folds.map((f) => f.node), add: b.nodes, replace });
  } catch (e) {
    g.initializers.splice(g.initializers.length - made.length);
    throw e;
  }
}
