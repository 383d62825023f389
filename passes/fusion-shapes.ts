/**
 * Shapes for the fusion rules. Their checks read shapes (RMSNorm's last axis and weight size,
 * SwiGLU's equal gate/up shapes, RoPE's head dim and split point); exported graphs carry them,
 * graphs made by a builder often do not. `shapedRulePass` runs shape inference (src/ir/infer)
 * first, but only when a node a rule is anchored near (`triggers`) has an untyped input or output,
 * and puts the old types back when no rule fired, so models without the pattern stay exactly as
 * they were.
 * For `--explain`, a rule that fired nowhere says nothing when the graph already holds the ops it
 * fuses into (`fusedInto`: an opset-23 export with RMSNormalization, a model optimized before):
 * there is nothing left to fuse, and its best partial match elsewhere would only be noise.
 */
import { FUSED_INFER_RULES } from '../custom-ops/registry.js';
import type { Model, Value } from '../src/ir/graph.js';
import { dimEq, inferShapes } from '../src/ir/infer/index.js';
import type { Dim, ValueType } from '../src/ir/types.js';
import type { Pass } from '../src/rewrite/pass.js';
import { graphsOf, rulePass, type Rule } from '../src/rewrite/rule.js';

/** A rule pass that infers shapes first when a node of `triggers` lacks them. */
export function shapedRulePass(name: string, rules: Rule<any>[], triggers: string[], fusedInto: string[]): Pass {
  const inner = rulePass(name, rules);
  const ops = new Set(triggers);
  const done = new Set(fusedInto);
  return {
    name,
    run(model, ctx) {
      const saved = needsShapes(model, ops) ? inferKeepingOld(model) : undefined;
      const before = ctx.explanations.length;
      const r = inner.run(model, ctx);
      if (saved && !r.modified) for (const [v, t] of saved) v.type = t;
      if (ctx.explanations.length > before && graphsOf(model).some((g) => g.nodes.some((n) => done.has(n.opType)))) {
        const mine = new Set(rules.map((x) => x.name));
        const kept = ctx.explanations.slice(before).filter((e) => !mine.has(e.rule));
        ctx.explanations.splice(before, Infinity, ...kept);
      }
      return r;
    },
  };
}

/** Infer shapes; returns the node outputs' types before, to put back. */
function inferKeepingOld(model: Model): Map<Value, ValueType | undefined> {
  const old = new Map<Value, ValueType | undefined>();
  for (const g of graphsOf(model)) for (const n of g.nodes) for (const o of n.outputs) old.set(o, o.type);
  inferShapes(model, { rules: FUSED_INFER_RULES });
  return old;
}

function needsShapes(model: Model, ops: Set<string>): boolean {
  for (const g of graphsOf(model))
    for (const n of g.nodes)
      if (ops.has(n.opType) && [...n.inputs, ...n.outputs].some((v) => v && !v.tensorType?.shape)) return true;
  return false;
}

/** Two shapes that are provably equal (same rank; each dim the same number or symbol). */
export function sameShape(a: Dim[] | undefined, b: Dim[] | undefined): boolean {
  return !!a && !!b && a.length === b.length && a.every((d, i) => d !== null && dimEq(d, b[i]));
}
