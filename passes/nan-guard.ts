/**
 * nan-guard — the NaN guard torch's sdpa decomposition puts after the attention softmax (a row of
 * all −inf scores gives NaN; the guard turns it into zeros), written with ops the WebGPU EPs run:
 *
 *   Where(IsNaN(x), c, x)  →  Where(Equal(x, x), x, c)        (x ≠ x exactly when x is NaN)
 *
 * ONNX Runtime's WebGPU EPs have no IsNaN kernel: it ran on the CPU with a device→host and a
 * host→device copy of the [B, heads, S, S] probabilities per layer, forward and recomputed in the
 * backward (bench/results/real-export.md). Same values for every input, NaN included.
 */
import { p, v } from '../src/rewrite/pattern.js';
import { defineRule, ok, rulePass } from '../src/rewrite/rule.js';

const x = v('x');
const c = v('c');

export const nanGuard = defineRule({
  name: 'nan-guard',
  // Where(IsNaN(x), c, x) -> Where(Equal(x, x), x, c)
  pattern: p.Where(p.IsNaN(x), c, x),
  check: () => ok({}),
  rewrite: (b, m) => b.op.Where(b.op.Equal(m.values.x, m.values.x), m.values.x, m.values.c),
});

export const nanGuardPass = rulePass('nan-guard', [nanGuard]);
