/**
 * Gradient of ai.ortfuse::RoPE, y = x·cos + rot(x)·sin with rot(x) = concat(−x₂, x₁). rot's
 * adjoint is rotᵀ(z) = concat(z₂, −z₁), so
 *   d x   = dy·cos + rotᵀ(dy·sin)       (the rotation by −θ)
 *   d cos = Σ_broadcast dy·x,  d sin = Σ_broadcast dy·rot(x)   (only when cos/sin are trained)
 */
import type { GradContext, GradRule } from '../../src/autodiff/types.js';
import type { Value } from '../../src/ir/graph.js';

function halves(g: GradContext, v: Value): [Value, Value] {
  const op = g.op;
  const half = op.Div(op.Slice(g.shapeX(0), g.ints([-1]), g.ints([2 ** 53])), g.ints([2]));
  const a = op.Slice(v, g.ints([0]), half, g.ints([-1]));
  const b = op.Slice(v, half, g.ints([2 ** 53]), g.ints([-1]));
  return [a, b];
}

export const ropeGrad: GradRule = {
  save: { inputs: [0, 1, 2] },
  grads: [
    (g) => {
      const op = g.op;
      const [z1, z2] = halves(g, op.Mul(g.dy(), g.x(2)));
      return op.Add(op.Mul(g.dy(), g.x(1)), op.Concat(z2, op.Neg(z1), { axis: -1 }));
    },
    (g, i) => g.sumToX(g.op.Mul(g.dy(), g.x(0)), i),
    (g, i) => {
      const [x1, x2] = halves(g, g.x(0));
      return g.sumToX(g.op.Mul(g.dy(), g.op.Concat(g.op.Neg(x2), x1, { axis: -1 })), i);
    },
  ],
};
