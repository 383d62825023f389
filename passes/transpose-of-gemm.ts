/**
 * transpose-of-gemm — a transposed Gemm without C computes the product the other way round:
 *
 *   Transpose(Gemm(A, B, transA, transB), [1,0])  →  Gemm(B, A, !transB, !transA)
 *
 * since (op(A) op(B))ᵀ = op(B)ᵀ op(A)ᵀ. The MatMul autodiff rule gives the weight gradient of
 * `x @ Transpose(W)` as Gemm(x, dy, transA=1) = dWᵀ, transposed back by the Transpose rule: one
 * Transpose kernel per linear per step on GPU EPs, gone here. Only when the Gemm has no C input,
 * alpha 1, and its result is read by the Transpose alone.
 */
import type { Value } from '../src/ir/graph.js';
import { p, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok, rulePass } from '../src/rewrite/rule.js';

const a = v('a');
const bv = v('b');

export const transposeOfGemm = defineRule({
  name: 'transpose-of-gemm',
  pattern: p.Transpose(p.Gemm(a, bv)),
  check(m) {
    const t = m.root;
    const gemm = t.input(0)!.producer!;
    if (gemm.inputs.length > 2 && gemm.inputs[2]) return no('the Gemm has a C input', gemm.inputs[2]);
    const perm = t.attr('perm') ? t.attrInts('perm') : [1, 0];
    if (perm.length !== 2 || perm[0] !== 1 || perm[1] !== 0) return no(`perm [${perm}] is not [1,0]`, t.outputs[0]);
    if (gemm.attrFloat('alpha', 1) !== 1) return no('alpha is not 1', gemm.outputs[0]);
    return ok({ transA: gemm.attrInt('transA', 0), transB: gemm.attrInt('transB', 0) });
  },
  rewrite(b, m, f): Value {
    return b.op.Gemm(m.values.b, m.values.a, { transA: 1 - f.transB, transB: 1 - f.transA });
  },
});

export const transposeOfGemmPass = rulePass('transpose-of-gemm', [transposeOfGemm]);
