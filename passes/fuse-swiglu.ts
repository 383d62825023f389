/**
 * fuse-swiglu — the gated activation of Qwen2's MLP becomes one op:
 *
 *   y = silu(gate) * up = (gate * sigmoid(gate)) * up   →   ai.ortfuse.SwiGLU(gate, up)
 *
 * as transformers' Qwen2MLP (`act_fn(gate_proj(x)) * up_proj(x)`, act_fn = SiLU,
 * https://pytorch.org/docs/stable/generated/torch.nn.SiLU.html); op in custom-ops/swiglu/schema.ts.
 * Every operand order matches (the matcher commutes Mul). Not fused: a Sigmoid of another tensor
 * than the gate, a silu read elsewhere too (the matcher's consumer rule), and gate/up shapes not
 * provably equal (the fused op does not broadcast).
 */
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { formatShape } from '../src/ir/types.js';
import { p, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { sameShape, shapedRulePass } from './fusion-shapes.js';

const gate = v('gate');
const up = v('up');

export const fuseSwiglu = defineRule({
  name: 'fuse-swiglu',
  // Mul(Mul(gate, Sigmoid(gate)), up) -> SwiGLU(gate, up)
  pattern: p.Mul(p.Mul(gate, p.Sigmoid(gate)), up),
  check(m) {
    const gs = m.values.gate.tensorType?.shape;
    const us = m.values.up.tensorType?.shape;
    if (!sameShape(gs, us)) return no(`gate ${formatShape(gs)} and up ${formatShape(us)} are not provably the same shape`, m.values.up);
    return ok(undefined);
  },
  rewrite: (b, m) => b.op.call('SwiGLU', [m.values.gate, m.values.up], {}, { domain: ORTFUSE_DOMAIN })[0],
});

/** The fuse-swiglu pass (infers shapes first where the graph has none). */
export const fuseSwigluPass = shapedRulePass('fuse-swiglu', [fuseSwiglu], ['Sigmoid'], ['SwiGLU']);
