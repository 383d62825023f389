/**
 * Portable bodies of ai.ortfuse::SwiGLUMLPGrad and SwiGLUMLPKeepGrad (math in grad-schema.ts),
 * every target: the two projections recomputed (SwiGLUMLPGrad) or read (SwiGLUMLPKeepGrad), the
 * activation gradient as SwiGLUGrad's, dx as two MatMuls, and the weight gradients as
 * Gemm(transA=1) over x's leading axes flattened to rows.
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { swigluMlpGradSchema, swigluMlpKeepGradSchema } from './grad-schema.js';

/** The four gradients from x, the weights, dy and the projections g = x·W_gateᵀ, u = x·W_upᵀ. */
function fromProjections(b: Body, [x, wGate, wUp, wDown, dy]: Value[], g: Value, u: Value): Value[] {
  const op = b.op;
  const s = op.Sigmoid(g);
  const one = op.CastLike(b.const(1, DataType.FLOAT, []), x);
  const gs = op.Mul(g, s);
  const dh = op.MatMul(dy, wDown);
  const dg = op.Mul(op.Mul(dh, u), op.Mul(s, op.Add(one, op.Mul(g, op.Sub(one, s)))));
  const du = op.Mul(dh, gs);
  const dx = op.Add(op.MatMul(dg, wGate), op.MatMul(du, wUp));
  // [rows, H] and [rows, I] views: H and I from w_gate [I, H].
  const hDim = b.dims(wGate, 1, 2), iDim = b.dims(wGate, 0, 1);
  const rows = (v: Value, last: Value) => op.Reshape(v, op.Concat(b.const([-1]), last, { axis: 0 }));
  const x2 = rows(x, hDim);
  const tn = (a: Value, c: Value) => op.Gemm(a, c, { transA: 1 });
  return [dx, tn(rows(dg, iDim), x2), tn(rows(du, iDim), x2), tn(rows(dy, hDim), rows(op.Mul(gs, u), iDim))];
}

export function buildSwiGLUMLPGrad(b: Body, inputs: Value[]): Value[] {
  const op = b.op;
  const [x, wGate, wUp] = inputs;
  const linear = (a: Value, w: Value) => op.MatMul(a, op.Transpose(w, { perm: [1, 0] }));
  return fromProjections(b, inputs, linear(x, wGate), linear(x, wUp));
}

export function buildSwiGLUMLPKeepGrad(b: Body, inputs: Value[]): Value[] {
  return fromProjections(b, inputs, inputs[5], inputs[6]);
}

export const swigluMlpGradOp: FusedOp = { schema: swigluMlpGradSchema, buildBody: buildSwiGLUMLPGrad };

export const swigluMlpKeepGradOp: FusedOp = { schema: swigluMlpKeepGradSchema, buildBody: buildSwiGLUMLPKeepGrad };
