/**
 * Portable bodies of ai.ortfuse::SwiGLUMLPGrad and SwiGLUMLPKeepGrad (math in grad-schema.ts),
 * every target: the two projections recomputed (SwiGLUMLPGrad) or read (SwiGLUMLPKeepGrad), the
 * activation gradient as SwiGLUGrad's, dx as two MatMuls, and the weight gradients as
 * Gemm(transA=1) over x's leading axes flattened to rows. Under precision 'f16' every MatMul and
 * Gemm operand is rounded through float16 first (../precision.ts `gemmOperand`).
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { gemmOperand } from '../precision.js';
import { mlpBodyOptions } from './function.js';
import { swigluMlpGradSchema, swigluMlpKeepGradSchema } from './grad-schema.js';

/**
 * The four gradients from x, the weights, dy and the projections g = x·W_gateᵀ, u = x·W_upᵀ;
 * `xr` is x as a GEMM operand (rounded under 'f16'), when the caller already has it.
 */
function fromProjections(b: Body, [x, wGate, wUp, wDown, dy]: Value[], g: Value, u: Value, opts: BodyOptions, xr = gemmOperand(b, x, opts.precision)): Value[] {
  const op = b.op;
  const r = (v: Value) => gemmOperand(b, v, opts.precision);
  const s = op.Sigmoid(g);
  const one = op.CastLike(b.const(1, DataType.FLOAT, []), x);
  const gs = op.Mul(g, s);
  const dyr = r(dy);
  const dh = op.MatMul(dyr, r(wDown));
  const dg = r(op.Mul(op.Mul(dh, u), op.Mul(s, op.Add(one, op.Mul(g, op.Sub(one, s))))));
  const du = r(op.Mul(dh, gs));
  const dx = op.Add(op.MatMul(dg, r(wGate)), op.MatMul(du, r(wUp)));
  // [rows, H] and [rows, I] views: H and I from w_gate [I, H].
  const hDim = b.dims(wGate, 1, 2), iDim = b.dims(wGate, 0, 1);
  const rows = (v: Value, last: Value) => op.Reshape(v, op.Concat(b.const([-1]), last, { axis: 0 }));
  const x2 = rows(xr, hDim);
  const tn = (a: Value, c: Value) => op.Gemm(a, c, { transA: 1 });
  return [dx, tn(rows(dg, iDim), x2), tn(rows(du, iDim), x2), tn(rows(dyr, hDim), r(rows(op.Mul(gs, u), iDim)))];
}

export function buildSwiGLUMLPGrad(b: Body, inputs: Value[], _target: Target, opts: BodyOptions): Value[] {
  const op = b.op;
  const [x, wGate, wUp] = inputs;
  const r = (v: Value) => gemmOperand(b, v, opts.precision);
  const xr = r(x);
  const linear = (w: Value) => op.MatMul(xr, r(op.Transpose(w, { perm: [1, 0] })));
  return fromProjections(b, inputs, linear(wGate), linear(wUp), opts, xr);
}

export function buildSwiGLUMLPKeepGrad(b: Body, inputs: Value[], _target: Target, opts: BodyOptions): Value[] {
  return fromProjections(b, inputs, inputs[5], inputs[6], opts);
}

export const swigluMlpGradOp: FusedOp = { schema: swigluMlpGradSchema, buildBody: buildSwiGLUMLPGrad, bodyOptions: mlpBodyOptions(swigluMlpGradSchema.name) };

export const swigluMlpKeepGradOp: FusedOp = { schema: swigluMlpKeepGradSchema, buildBody: buildSwiGLUMLPKeepGrad, bodyOptions: mlpBodyOptions(swigluMlpKeepGradSchema.name) };
