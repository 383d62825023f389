/**
 * Test support for the backward fused ops: a model whose graph is one call of a (possibly
 * multi-output) fused op with its body attached, and a node of it for validator tests.
 */
import { checkModel, createModel, GraphBuilder, type Model, type Node } from '../src/ir/index.js';
import type { Attrs as BuilderAttrs } from '../src/ir/builder.js';
import { ensureFunction } from './functions.js';
import type { IoDecl } from './testing.js';
import { ORTFUSE_DOMAIN, type FusedOp, type Target } from '../src/fused/types.js';

/** One call of `op` with every output a graph output (named as given), body for `target` attached. */
export function fusedModelN(op: FusedOp, inputs: IoDecl[], attrs: BuilderAttrs, target: Target, outputs: IoDecl[], opset = 20): Model {
  const m = createModel({ opset });
  const b = new GraphBuilder(m.graph);
  const ins = inputs.map((d) => b.input(d.name, d.elem, d.shape));
  const outs = b.op.call(op.schema.name, ins, attrs, { domain: ORTFUSE_DOMAIN, outputs: op.schema.outputs.length });
  outs.forEach((v, k) => b.output(v, outputs[k].name));
  ensureFunction(m, op, target);
  const problems = checkModel(m);
  if (problems.length) throw new Error(problems.map((p) => p.message).join('\n'));
  return m;
}

/** A lone node `name` calling `op` on inputs declared as given (for validator tests). */
export function lonelyNode(op: FusedOp, name: string, inputs: IoDecl[], attrs: BuilderAttrs = {}): Node {
  const m = createModel();
  const b = new GraphBuilder(m.graph);
  b.op.call(op.schema.name, inputs.map((d) => b.input(d.name, d.elem, d.shape)), attrs, { domain: ORTFUSE_DOMAIN, name, outputs: op.schema.outputs.length });
  return m.graph.nodes[0];
}
