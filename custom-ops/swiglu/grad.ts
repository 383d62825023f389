/**
 * Gradient of ai.ortfuse::SwiGLU, y = g·σ(g)·u. Saves only the two pre-activations and recomputes
 * the sigmoid (as Liger):
 *   s = σ(g);  d gate = dy·u·s·(1 + g·(1 − s));  d up = dy·g·s
 */
import type { GradRule } from '../../src/autodiff/types.js';

export const swigluGrad: GradRule = {
  save: { inputs: [0, 1] },
  grads: [
    (g) => {
      const op = g.op;
      const gate = g.x(0);
      const s = op.Sigmoid(gate);
      const one = g.scalar(1, g.elemTypeX(0));
      const dsilu = op.Mul(s, op.Add(one, op.Mul(gate, op.Sub(one, s))));
      return op.Mul(op.Mul(g.dy(), g.x(1)), dsilu);
    },
    (g) => g.op.Mul(g.dy(), g.op.Mul(g.x(0), g.op.Sigmoid(g.x(0)))),
  ],
};
