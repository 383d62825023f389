/**
 * Portable body of ai.ortfuse::RMSNormGrad (math in grad-schema.ts), the same for every target
 * (every op runs on ORT-web's WebGPU EP):
 *   xs = Cast(x, to=@stash_type); r = Reciprocal(Sqrt(ReduceMean(xs·xs, -1) + eps)); n = xs·r
 *   dn = CastLike(dy·weight, xs); dx = CastLike(r·(dn − n·ReduceMean(dn·n, -1)), x)
 *   dweight = ReduceSum(Flatten(dy·CastLike(n, x), axis=-1), axis 0)
 * Flatten to [rows, D] sums every leading axis whatever x's rank (the body is shared by all callers).
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { rmsNormGradSchema } from './grad-schema.js';

export function buildRMSNormGrad(b: Body, [dy, x, weight]: Value[]): Value[] {
  const op = b.op;
  const xs = op.Cast(x, { to: b.attrRef('to', 'INT', 'stash_type') });
  const ms = b.reduce('ReduceMean', op.Mul(xs, xs), [-1], true);
  const eps = op.CastLike(b.attrConst('float', 'epsilon'), xs);
  const r = op.Reciprocal(op.Sqrt(op.Add(ms, eps)));
  const n = op.Mul(xs, r);
  const dn = op.CastLike(op.Mul(dy, weight), xs);
  const proj = b.reduce('ReduceMean', op.Mul(dn, n), [-1], true);
  const dx = op.CastLike(op.Mul(r, op.Sub(dn, op.Mul(n, proj))), x);
  const dweight = b.reduce('ReduceSum', op.Flatten(op.Mul(dy, op.CastLike(n, x)), { axis: -1 }), [0], false);
  return [dx, dweight];
}

export const rmsNormGradOp: FusedOp = { schema: rmsNormGradSchema, buildBody: buildRMSNormGrad };
