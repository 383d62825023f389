/**
 * Portable body of ai.ortfuse::CausalAttentionGrad (math in grad-schema.ts), every target: the
 * probabilities recomputed as exp(masked scores − lse), then dv = pᵀ·do, ds = p·(do·vᵀ − δ)·scale,
 * dq = ds·k, dk = dsᵀ·q on the repeated heads, and dk, dv summed over each group of query heads.
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { maskedScores, repeatKv, sumGroups } from './function.js';
import { causalAttentionGradSchema } from './grad-schema.js';

export function buildCausalAttentionGrad(b: Body, [q, k, v, o, lse, dout]: Value[]): Value[] {
  const op = b.op;
  const kf = repeatKv(b, k, q), vf = repeatKv(b, v, q);
  const tr = (x: Value) => op.Transpose(x, { perm: [0, 1, 3, 2] });
  const p = op.Exp(op.Sub(maskedScores(b, q, kf), op.Unsqueeze(lse, b.const([-1]))));
  const delta = b.reduce('ReduceSum', op.Mul(dout, o), [-1], true);
  const ds = op.Mul(op.Mul(p, op.Sub(op.MatMul(dout, tr(vf)), delta)), op.CastLike(b.attrConst('float', 'scale'), q));
  return [op.MatMul(ds, kf), sumGroups(b, op.MatMul(tr(ds), q), k, q), sumGroups(b, op.MatMul(tr(p), dout), v, q)];
}

export const causalAttentionGradOp: FusedOp = { schema: causalAttentionGradSchema, buildBody: buildCausalAttentionGrad };
