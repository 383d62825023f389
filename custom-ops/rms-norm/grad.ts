/**
 * Gradient of ai.ortfuse::RMSNorm, y = w · cast(n), n = xs·r, r = 1/sqrt(mean(xs²) + ε), xs = x in
 * stash_type. The per-row r ([..., 1], stash_type) is recomputed from the saved x; no [..., D]
 * intermediate is kept from the forward pass.
 *   d w = Σ_rows dy·n            d n = dy·w
 *   d x = r · (d n − n · mean(d n · n))      (computed in stash_type, cast back to x's type)
 */
import type { GradContext, GradRule } from '../../src/autodiff/types.js';
import type { Value } from '../../src/ir/graph.js';

interface Normalized {
  /** x in stash_type */
  n: Value;
  r: Value;
  stash: number;
}

function normalize(g: GradContext): Normalized {
  const op = g.op;
  const stash = g.node.attrInt('stash_type', 1);
  const x = g.x(0);
  const xs = g.elemTypeX(0) === stash ? x : op.Cast(x, { to: stash });
  const eps = g.scalar(g.node.attrFloat('epsilon', 1e-6), stash);
  const ms = op.ReduceMean(op.Mul(xs, xs), g.ints([-1]), { keepdims: 1 });
  const r = op.Reciprocal(op.Sqrt(op.Add(ms, eps)));
  return { n: op.Mul(xs, r), r, stash };
}

export const rmsNormGrad: GradRule = {
  save: { inputs: [0, 1] },
  grads: [
    (g) => {
      const op = g.op;
      const { n, r, stash } = normalize(g);
      const t = g.elemTypeX(0);
      let dn = op.Mul(g.dy(), g.x(1));
      if (t !== stash) dn = op.Cast(dn, { to: stash });
      const proj = op.ReduceMean(op.Mul(dn, n), g.ints([-1]), { keepdims: 1 });
      const dx = op.Mul(r, op.Sub(dn, op.Mul(n, proj)));
      return t === stash ? dx : op.Cast(dx, { to: t });
    },
    (g) => {
      const op = g.op;
      const { n, stash } = normalize(g);
      const t = g.elemTypeX(0); // weight shares x's element type
      const prod = op.Mul(g.dy(), t === stash ? n : op.Cast(n, { to: t }));
      const rank = g.rankX(0);
      return rank > 1 ? g.reduceSum(prod, Array.from({ length: rank - 1 }, (_, k) => k), false) : prod;
    },
  ],
};
