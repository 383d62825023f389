/**
 * Portable body of ai.ortfuse::CausalAttentionGrad (math in grad-schema.ts), every target: the
 * probabilities recomputed as exp(masked scores − lse), then dv = pᵀ·do, ds = p·(do·vᵀ − δ),
 * dq = scale·ds·k, dk = scale·dsᵀ·q on the repeated heads, and dk, dv summed over each group of
 * query heads. Under precision 'f16' every MatMul operand is rounded through float16, as the
 * WGSL kernels do (scale applied after the product, so ds is rounded unscaled).
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { gemmOperand } from '../precision.js';
import { attentionOptions, maskedScores, repeatKv, sumGroups } from './function.js';
import { causalAttentionGradSchema } from './grad-schema.js';

export function buildCausalAttentionGrad(b: Body, [q, k, v, o, lse, dout]: Value[], _target: Target, opts: BodyOptions): Value[] {
  const op = b.op;
  const r = (x: Value) => gemmOperand(b, x, opts.precision);
  const kf = r(repeatKv(b, k, q)), vf = r(repeatKv(b, v, q)), qr = r(q), dor = r(dout);
  const tr = (x: Value) => op.Transpose(x, { perm: [0, 1, 3, 2] });
  const scale = op.CastLike(b.attrConst('float', 'scale'), q);
  const p = op.Exp(op.Sub(maskedScores(b, qr, kf), op.Unsqueeze(lse, b.const([-1]))));
  const delta = b.reduce('ReduceSum', op.Mul(dout, o), [-1], true);
  const ds = r(op.Mul(p, op.Sub(op.MatMul(dor, tr(vf)), delta)));
  return [op.Mul(op.MatMul(ds, kf), scale), sumGroups(b, op.Mul(op.MatMul(tr(ds), qr), scale), k, q), sumGroups(b, op.MatMul(tr(r(p)), dor), v, q)];
}

export const causalAttentionGradOp: FusedOp = { schema: causalAttentionGradSchema, buildBody: buildCausalAttentionGrad, bodyOptions: attentionOptions };
