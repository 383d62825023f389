/**
 * Gradient of ai.ortfuse::CausalAttention: one ai.ortfuse::CausalAttentionGrad(q, k, v, o, lse, do)
 * -> (dq, dk, dv) node serves the three inputs (math in grad-schema.ts). Saved: q, k, v and the
 * outputs o [B, Hq, T, D] and lse [B, Hq, T] — nothing [T, T]. lse carries no gradient of its own
 * (only the backward reads it). The grad node takes the forward's scale and precision.
 */
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradRule } from '../../src/autodiff/types.js';
import { gradNode } from '../grad-ops.js';
import { precisionAttrs } from '../precision.js';
import { causalAttentionGradSchema } from './grad-schema.js';

const emit = sharedGrads((g) => {
  if (g.hasDy(1)) g.unsupported("a gradient flows into CausalAttention's lse output; only o is differentiable");
  return gradNode(g, causalAttentionGradSchema, [g.x(0), g.x(1), g.x(2), g.y(0), g.y(1), g.dy(0)], { scale: { float: g.node.attrFloat('scale', 1) }, ...precisionAttrs(g.node) }, [0, 1, 2]);
});

export const causalAttentionGrad: GradRule = {
  save: { inputs: [0, 1, 2], outputs: [0, 1] },
  grads: [emit(0), emit(1), emit(2)],
};
