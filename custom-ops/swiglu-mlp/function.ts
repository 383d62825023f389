/**
 * Portable bodies of ai.ortfuse::SwiGLUMLP and SwiGLUMLPKeep (math in schema.ts), every target:
 * MatMul(Mul(Mul(g, Sigmoid(g)), u), Transpose(w_down)) with g, u = MatMul(x, Transpose(w_gate | w_up));
 * SwiGLUMLPKeep also returns g and u. Under precision 'f16' every MatMul operand is rounded
 * through float16 first (../precision.ts `gemmOperand`).
 */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import type { Node } from '../../src/ir/graph.js';
import { gemmOperand, precisionOption } from '../precision.js';
import { swigluMlpKeepSchema, swigluMlpSchema } from './schema.js';

/** y, g and u of the MLP. */
function mlp(b: Body, [x, wGate, wUp, wDown]: Value[], opts: BodyOptions): [Value, Value, Value] {
  const op = b.op;
  const r = (v: Value) => gemmOperand(b, v, opts.precision);
  const linear = (a: Value, w: Value) => op.MatMul(r(a), r(op.Transpose(w, { perm: [1, 0] })));
  const xr = r(x);
  const g = op.MatMul(xr, r(op.Transpose(wGate, { perm: [1, 0] })));
  const u = op.MatMul(xr, r(op.Transpose(wUp, { perm: [1, 0] })));
  return [linear(op.Mul(op.Mul(g, op.Sigmoid(g)), u), wDown), g, u];
}

export function buildSwiGLUMLP(b: Body, inputs: Value[], _target: Target, opts: BodyOptions): Value[] {
  return [mlp(b, inputs, opts)[0]];
}

export function buildSwiGLUMLPKeep(b: Body, inputs: Value[], _target: Target, opts: BodyOptions): Value[] {
  return mlp(b, inputs, opts);
}

/** The precision all of an MLP op's callers use (../precision.ts). */
export const mlpBodyOptions = (name: string) => (nodes: Node[], target: Target): BodyOptions => precisionOption(nodes, target, name);

export const swigluMlp: FusedOp = { schema: swigluMlpSchema, buildBody: buildSwiGLUMLP, bodyOptions: mlpBodyOptions(swigluMlpSchema.name) };

export const swigluMlpKeep: FusedOp = { schema: swigluMlpKeepSchema, buildBody: buildSwiGLUMLPKeep, bodyOptions: mlpBodyOptions(swigluMlpKeepSchema.name) };
