/**
 * Portable body of ai.ortfuse::SwiGLUMLP (math in schema.ts), every target:
 * MatMul(Mul(Mul(g, Sigmoid(g)), u), Transpose(w_down)) with g, u = MatMul(x, Transpose(w_gate | w_up)).
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { swigluMlpSchema } from './schema.js';

export function buildSwiGLUMLP(b: Body, [x, wGate, wUp, wDown]: Value[]): Value[] {
  const op = b.op;
  const linear = (a: Value, w: Value) => op.MatMul(a, op.Transpose(w, { perm: [1, 0] }));
  const g = linear(x, wGate);
  return [linear(op.Mul(op.Mul(g, op.Sigmoid(g)), linear(x, wUp)), wDown)];
}

export const swigluMlp: FusedOp = { schema: swigluMlpSchema, buildBody: buildSwiGLUMLP };
