/**
 * Gradients of MatMul (numpy matmul: batched, broadcast batch dims, 1-D operands) and Gemm.
 *   Y = A @ B:  dA = dY @ Bᵀ (summed over A's broadcast batch dims),  dB = Aᵀ @ dY (likewise).
 * A 2-D B (a weight) multiplied by a batched A gets dB = Gemm(A₂ᵀ, dY₂) on the rows flattened, so
 * no [batch, K, N] intermediate is made.
 *   Y = alpha·op(A)·op(B) + beta·C:  d op(A) = alpha·dY·op(B)ᵀ, d op(B) = alpha·op(A)ᵀ·dY, dC = beta·dY.
 */
import type { Value } from '../../ir/graph.js';
import type { Dim } from '../../ir/types.js';
import type { GradContext, GradRule } from '../types.js';

/** Swap the last two axes of a value of rank `r`. */
function swapLast(g: GradContext, v: Value, r: number): Value {
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return g.op.Transpose(v, { perm });
}

/** Last dim of input `i` as an int64 [1] tensor (static when known). */
function lastDim(g: GradContext, i: number): Value {
  const d = g.staticShapeX(i)?.at(-1);
  if (typeof d === 'number') return g.ints([d]);
  return g.op.Slice(g.shapeX(i), g.ints([-1]), g.ints([2 ** 53]));
}

/** Static shape of dY with its last two dims replaced (undefined if unknown). */
function withLast2(out: Dim[] | undefined, a: Dim, b: Dim): Dim[] | undefined {
  return out && out.length >= 2 ? [...out.slice(0, -2), a, b] : undefined;
}

function matmulGrad(g: GradContext, i: number): Value {
  const ra = g.rankX(0);
  const rb = g.rankX(1);
  const op = g.op;
  if (ra === 1 && rb === 1) return op.Mul(g.dy(), g.x(1 - i)); // dot product: dy is a scalar
  let dy = g.dy();
  if (ra === 1) dy = g.unsqueeze(dy, [-2]);
  if (rb === 1) dy = g.unsqueeze(dy, [-1]);
  const sa = g.staticShapeX(0);
  const sb = g.staticShapeX(1);
  const out = ra >= 2 && rb >= 2 ? g.node.outputs[0].tensorType?.shape : undefined;
  if (i === 0) {
    const b = rb === 1 ? g.unsqueeze(g.x(1), [1]) : g.x(1);
    const r = Math.max(rb, 2);
    const full = op.MatMul(dy, swapLast(g, b, r)); // [batch..., M, K]
    if (ra === 1) {
      const rf = Math.max(ra, rb, 2);
      return g.reduceSum(full, Array.from({ length: rf - 1 }, (_, k) => k), false);
    }
    return g.sumToX(full, 0, withLast2(out, out?.at(-2) ?? null, sa?.at(-1) ?? null));
  }
  // dB
  if (rb === 2 && ra > 2) {
    const a2 = op.Reshape(g.x(0), op.Concat(g.ints([-1]), lastDim(g, 0), { axis: 0 }));
    const dy2 = op.Reshape(dy, op.Concat(g.ints([-1]), lastDim(g, 1), { axis: 0 }));
    return op.Gemm(a2, dy2, { transA: 1 });
  }
  const a = ra === 1 ? g.unsqueeze(g.x(0), [0]) : g.x(0);
  const full = op.MatMul(swapLast(g, a, Math.max(ra, 2)), dy); // [batch..., K, N]
  if (rb === 1) {
    const rf = Math.max(ra, rb, 2);
    const axes = Array.from({ length: rf }, (_, k) => k).filter((k) => k !== rf - 2);
    return g.reduceSum(full, axes, false);
  }
  return g.sumToX(full, 1, withLast2(out, sb?.at(-2) ?? null, out?.at(-1) ?? null));
}

function gemmGrad(g: GradContext, i: number): Value | undefined {
  const op = g.op;
  const alpha = g.node.attrFloat('alpha', 1);
  const beta = g.node.attrFloat('beta', 1);
  const tA = g.node.attrInt('transA', 0);
  const tB = g.node.attrInt('transB', 0);
  const dy = g.dy();
  if (i === 0) {
    return tA === 0
      ? op.Gemm(dy, g.x(1), { alpha, transB: 1 - tB }) // dA = α·dY·op(B)ᵀ
      : op.Gemm(g.x(1), dy, { alpha, transA: tB, transB: 1 }); // dA = α·op(B)·dYᵀ
  }
  if (i === 1) {
    return tB === 0
      ? op.Gemm(g.x(0), dy, { alpha, transA: 1 - tA }) // dB = α·op(A)ᵀ·dY
      : op.Gemm(dy, g.x(0), { alpha, transA: 1, transB: tA }); // dB = α·dYᵀ·op(A)
  }
  const scaled = beta === 1 ? dy : op.Mul(dy, g.scalar(beta, g.elemTypeY(0)));
  return g.sumToX(scaled, 2);
}

export const matmulRules: Record<string, GradRule> = {
  MatMul: { save: { inputs: [0, 1] }, grads: [matmulGrad, matmulGrad] },
  Gemm: { save: { inputs: [0, 1] }, grads: [gemmGrad, gemmGrad, gemmGrad] },
};
