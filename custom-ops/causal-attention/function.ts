/**
 * Portable body of ai.ortfuse::CausalAttention (math in schema.ts), every target: k and v repeated to
 * the query heads (Unsqueeze → Expand → Reshape, as transformers' repeat_kv), scores
 * MatMul(q, kᵀ)·scale with the keys after each query replaced by float32's lowest value, lse by
 * ReduceMax/Exp/ReduceSum/Log, o = MatMul(exp(s − lse), v). Stock ops the WebGPU EP runs on the GPU.
 * Under precision 'f16' every MatMul operand is rounded through float16 (../precision.ts gemmOperand).
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Node, Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { gemmOperand, precisionOption } from '../precision.js';
import { causalAttentionSchema } from './schema.js';

/** float32's lowest value: a masked score (exp of it minus any finite lse is 0). */
const FLT_LOWEST = -3.4028234663852886e38;

/** kv [B, Hkv, T, D] → [B, Hq, T, D] with query head h reading kv head ⌊h / (Hq/Hkv)⌋. */
export function repeatKv(b: Body, kv: Value, q: Value): Value {
  const op = b.op;
  const rep = op.Div(b.dims(q, 1, 2), b.dims(kv, 1, 2));
  const e = op.Expand(op.Unsqueeze(kv, b.const([2])), op.Concat(b.dims(kv, 0, 2), rep, b.dims(kv, 2), { axis: 0 }));
  return op.Reshape(e, b.dims(q, 0));
}

/** A gradient [B, Hq, T, D] summed over each group of query heads: [B, Hkv, T, D] as kv. */
export function sumGroups(b: Body, g: Value, kv: Value, q: Value): Value {
  const op = b.op;
  const rep = op.Div(b.dims(q, 1, 2), b.dims(kv, 1, 2));
  const grouped = op.Reshape(g, op.Concat(b.dims(kv, 0, 2), rep, b.dims(kv, 2), { axis: 0 }));
  return b.reduce('ReduceSum', grouped, [2], false);
}

/** scale·q·kfᵀ [B, Hq, T, T] with the entries u > t set to float32's lowest value. */
export function maskedScores(b: Body, q: Value, kf: Value): Value {
  const op = b.op;
  const s = op.Mul(op.MatMul(q, op.Transpose(kf, { perm: [0, 1, 3, 2] })), op.CastLike(b.attrConst('float', 'scale'), q));
  const pos = op.Range(b.const(0), b.scalar(b.dims(q, 2, 3)), b.const(1));
  const allowed = op.LessOrEqual(op.Unsqueeze(pos, b.const([0])), op.Unsqueeze(pos, b.const([1]))); // [T, T]: u ≤ t
  return op.Where(allowed, s, op.CastLike(b.const(FLT_LOWEST, DataType.FLOAT, []), q));
}

export function buildCausalAttention(b: Body, [q, k, v]: Value[], _target: Target, opts: BodyOptions): Value[] {
  const op = b.op;
  const r = (x: Value) => gemmOperand(b, x, opts.precision);
  const s = maskedScores(b, r(q), r(repeatKv(b, k, q)));
  const m = b.reduce('ReduceMax', s, [-1], true);
  const lse = op.Add(m, op.Log(b.reduce('ReduceSum', op.Exp(op.Sub(s, m)), [-1], true)));
  const o = op.MatMul(r(op.Exp(op.Sub(s, lse))), r(repeatKv(b, v, q)));
  return [o, op.Squeeze(lse, b.const([-1]))];
}

/** CausalAttention and CausalAttentionGrad: the precision their callers use. */
export function attentionOptions(nodes: Node[], target: Target): BodyOptions {
  return precisionOption(nodes, target, causalAttentionSchema.name);
}

export const causalAttention: FusedOp = { schema: causalAttentionSchema, buildBody: buildCausalAttention, bodyOptions: attentionOptions };
