/**
 * Gradient of ai.ortfuse::RoPE, y = x·cos + rot(x)·sin with rot(x) = concat(−x₂, x₁):
 *   d x   = ai.ortfuse::RoPEGrad(dy, cos, sin) = dy·cos + rotᵀ(dy·sin)   (the rotation by −θ; one node)
 *   d cos = Σ_broadcast dy·x,  d sin = Σ_broadcast dy·rot(x)   (stock ops; only when cos/sin are trained)
 */
import type { GradContext, GradRule } from '../../src/autodiff/types.js';
import type { Value } from '../../src/ir/graph.js';
import { gradNode } from '../grad-ops.js';
import { ropeGradSchema } from './grad-schema.js';

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
    (g) => gradNode(g, ropeGradSchema, [g.dy(), g.x(1), g.x(2)], {}, [0])[0],
    (g, i) => g.sumToX(g.op.Mul(g.dy(), g.x(0)), i),
    (g, i) => {
      const [x1, x2] = halves(g, g.x(0));
      return g.sumToX(g.op.Mul(g.dy(), g.op.Concat(g.op.Neg(x2), x1, { axis: -1 })), i);
    },
  ],
};
