/**
 * Portable body of ai.ortfuse::SwiGLUGrad (math in grad-schema.ts), every target:
 *   s = Sigmoid(gate); dgate = (dy·up)·(s·(1 + gate·(1 − s))); dup = dy·(gate·s)
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { swigluGradSchema } from './grad-schema.js';

export function buildSwiGLUGrad(b: Body, [dy, gate, up]: Value[]): Value[] {
  const op = b.op;
  const s = op.Sigmoid(gate);
  const one = op.CastLike(b.const(1, DataType.FLOAT, []), gate);
  const dsilu = op.Mul(s, op.Add(one, op.Mul(gate, op.Sub(one, s))));
  return [op.Mul(op.Mul(dy, up), dsilu), op.Mul(dy, op.Mul(gate, s))];
}

export const swigluGradOp: FusedOp = { schema: swigluGradSchema, buildBody: buildSwiGLUGrad };
