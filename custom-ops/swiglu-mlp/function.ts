/**
 * Portable bodies of ai.ortfuse::SwiGLUMLP and SwiGLUMLPKeep (math in schema.ts), every target:
 * MatMul(Mul(Mul(g, Sigmoid(g)), u), Transpose(w_down)) with g, u = MatMul(x, Transpose(w_gate | w_up));
 * SwiGLUMLPKeep also returns g and u.
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { swigluMlpKeepSchema, swigluMlpSchema } from './schema.js';

/** y, g and u of the MLP. */
function mlp(b: Body, [x, wGate, wUp, wDown]: Value[]): [Value, Value, Value] {
  const op = b.op;
  const linear = (a: Value, w: Value) => op.MatMul(a, op.Transpose(w, { perm: [1, 0] }));
  const g = linear(x, wGate);
  const u = linear(x, wUp);
  return [linear(op.Mul(op.Mul(g, op.Sigmoid(g)), u), wDown), g, u];
}

export function buildSwiGLUMLP(b: Body, inputs: Value[]): Value[] {
  return [mlp(b, inputs)[0]];
}

export function buildSwiGLUMLPKeep(b: Body, inputs: Value[]): Value[] {
  return mlp(b, inputs);
}

export const swigluMlp: FusedOp = { schema: swigluMlpSchema, buildBody: buildSwiGLUMLP };

export const swigluMlpKeep: FusedOp = { schema: swigluMlpKeepSchema, buildBody: buildSwiGLUMLPKeep };
