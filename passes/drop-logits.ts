/**
 * drop-logits — in a training pipeline, a logits output that only exists to be returned beside a
 * fused loss is removed from the graph outputs, so nothing materialises the [N, V] logits:
 *
 *   outputs (loss = FLCE(h', W, b, y), logits = h · Wᵀ (+ b))  →  outputs (loss)
 *
 * (dce then removes the lm_head MatMul). A logits output is one computed by an lm_head over the
 * same weight as a graph-output ai.ortfuse.FusedLinearCrossEntropy (custom-ops/fused-linear-
 * cross-entropy/schema.ts): MatMul(·, Transpose(W)), Gemm(·, W, transB=1), MatMul/Gemm with the
 * [H, V] weight the fusion transposed, each with an optional Add(bias) and Cast.
 *
 * Runs only with `options.training` or `options.dropLogits` (`ortfuse optimize --drop-logits`):
 * inference and eval users of `optimize` keep every output. Counts: { 'drop-logits': k }.
 */
import type { Model, Node, Value } from '../src/ir/graph.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';

export const NAME = 'drop-logits';

/** The lm_head weights ([V, H] and [H, V] forms) read by graph-output fused losses. */
function fusedLossWeights(model: Model): Set<Value> {
  const out = new Set<Value>();
  for (const n of model.graph.nodes) {
    if (n.domain !== ORTFUSE_DOMAIN || n.opType !== 'FusedLinearCrossEntropy' || !n.outputs[0].isGraphOutput()) continue;
    const w = n.inputs[1];
    if (!w) continue;
    out.add(w);
    const t = w.producer;
    if (t?.opType === 'Transpose' && t.inputs[0]) out.add(t.inputs[0]);
  }
  return out;
}

/** Whether `v` is h · Wᵀ (+ bias) (optionally Cast) for one of `weights`. */
function isLogitsOf(v: Value, weights: Set<Value>): boolean {
  let n: Node | undefined = v.producer;
  if (n?.opType === 'Cast') n = n.inputs[0]?.producer;
  if (n?.opType === 'Add') n = n.inputs.map((x) => x?.producer).find((p) => p?.opType === 'MatMul' || p?.opType === 'Gemm');
  if (!n || (n.opType !== 'MatMul' && n.opType !== 'Gemm')) return false;
  const w = n.inputs[1];
  if (!w) return false;
  if (weights.has(w)) return true;
  const t = w.producer;
  return t?.opType === 'Transpose' && !!t.inputs[0] && weights.has(t.inputs[0]);
}

export const dropLogits: Pass = {
  name: NAME,
  run(model, ctx): PassResult {
    if (!ctx.options.training && !ctx.options.dropLogits) return { modified: false, counts: {} };
    const weights = fusedLossWeights(model);
    if (!weights.size) return { modified: false, counts: {} };
    const g = model.graph;
    const drop = g.outputs.filter((o) => isLogitsOf(o, weights));
    if (!drop.length) return { modified: false, counts: {} };
    g.outputs = g.outputs.filter((o) => !drop.includes(o));
    return { modified: true, counts: { [NAME]: drop.length } };
  },
};
