/**
 * transpose-pair — two Transposes in a row become one (or none):
 *
 *   Transpose(Transpose(x, p1), p2)  →  Transpose(x, q), q[i] = p1[p2[i]];  x itself when q = identity
 *
 * The autodiff rule of Transpose transposes the gradient back, so every `x @ Transpose(W)` of the
 * exported linears leaves Transpose(Transpose(W)) in the backward (7 per Qwen2 layer): a kernel
 * each per step on GPU EPs. The inner Transpose may be read elsewhere (the forward MatMul).
 * Needs the perms, or the rank to default them. A graph output keeps a node (Transpose or Identity).
 */
import type { Node, Value } from '../src/ir/graph.js';
import { p, shared, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok, rulePass } from '../src/rewrite/rule.js';

const x = v('x');

/** perm of a Transpose node (default: reversed axes, needs the input's rank, or `rank`). */
function permOf(n: Node, rank = n.input(0)?.tensorType?.shape?.length): number[] | undefined {
  if (n.attr('perm')) return n.attrInts('perm');
  return rank === undefined ? undefined : Array.from({ length: rank }, (_, i) => rank - 1 - i);
}

export const transposePair = defineRule({
  name: 'transpose-pair',
  pattern: p.Transpose(shared(p.Transpose(x))),
  check(m) {
    const outer = m.root;
    const inner = outer.input(0)!.producer!;
    const p1 = permOf(inner);
    const p2 = permOf(outer, p1?.length);
    if (!p1 || !p2 || p1.length !== p2.length) return no('perms unknown or of different ranks', m.values.x);
    const q = p2.map((a) => p1[a]);
    return ok({ q, identity: q.every((a, i) => a === i), output: outer.outputs[0].isGraphOutput() });
  },
  rewrite(b, m, f): Value {
    if (!f.identity) return b.op.Transpose(m.values.x, { perm: f.q });
    return f.output ? b.op.Identity(m.values.x) : m.values.x;
  },
});

export const transposePairPass = rulePass('transpose-pair', [transposePair]);
