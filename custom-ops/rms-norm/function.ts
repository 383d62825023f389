/**
 * Portable body of ai.ortfuse::RMSNorm (math in schema.ts), the same for every target:
 *   Cast(x, to=@stash_type) → Mul(xs, xs) → ReduceMean(-1) → Add(eps) → Sqrt → Reciprocal → Mul(xs)
 *   → CastLike(x) → Mul(weight).
 * Also the emitter for ONNX RMSNormalization-23, which the fusion pass uses where the model's
 * opset allows it (checked: onnxruntime-node 1.30 CPU runs it; onnxruntime-web's WebGPU EP has a kernel for it).
 */
import { DataType } from '../../src/onnx/schema.js';
import type { GraphBuilder } from '../../src/ir/builder.js';
import type { Model, Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { rmsNormSchema } from './schema.js';

export function buildRMSNorm(b: Body, [x, weight]: Value[]): Value[] {
  const op = b.op;
  const xs = op.Cast(x, { to: b.attrRef('to', 'INT', 'stash_type') });
  const ms = b.reduce('ReduceMean', op.Mul(xs, xs), [-1], true);
  const eps = op.CastLike(b.attrConst('float', 'epsilon'), xs);
  const rstd = op.Reciprocal(op.Sqrt(op.Add(ms, eps)));
  return [op.Mul(op.CastLike(op.Mul(xs, rstd), x), weight)];
}

export const rmsNorm: FusedOp = { schema: rmsNormSchema, buildBody: buildRMSNorm };

/** True where the fusion pass may emit ONNX RMSNormalization instead of ai.ortfuse::RMSNorm. */
export function canUseRMSNormalization23(model: Model): boolean {
  return (model.opset('') ?? 0) >= 23;
}

/**
 * ONNX RMSNormalization-23 over the last axis (stash_type float): the spec casts the normalized
 * value back to X's type before the scale, as HF's Qwen2RMSNorm (tested for float32 in rms-norm.test.ts).
 */
export function rmsNormalization23(b: GraphBuilder, x: Value, weight: Value, epsilon: number): Value {
  return b.op.RMSNormalization(x, weight, { axis: -1, epsilon: { float: epsilon }, stash_type: DataType.FLOAT });
}
