/**
 * Portable body of ai.ortfuse::RoPEGrad (math in grad-schema.ts), every target:
 *   half = D/2 (from Shape at run time); u = dy·sin; u1 = u[..., :half], u2 = u[..., half:]
 *   dx = dy·cos + Concat(u2, −u1)
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { ropeGradSchema } from './grad-schema.js';

export function buildRoPEGrad(b: Body, [dy, cos, sin]: Value[]): Value[] {
  const op = b.op;
  const half = op.Div(b.dims(dy, -1), b.const([2]));
  const u = op.Mul(dy, sin);
  const u1 = b.slice(u, b.const([0]), half, -1);
  const u2 = b.slice(u, half, b.const([Number.MAX_SAFE_INTEGER]), -1);
  return [op.Add(op.Mul(dy, cos), op.Concat(u2, op.Neg(u1), { axis: -1 }))];
}

export const ropeGradOp: FusedOp = { schema: ropeGradSchema, buildBody: buildRoPEGrad };
