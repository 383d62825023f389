/**
 * Portable body of ai.ortfuse::RoPE (math in schema.ts), every target:
 *   half = D/2 (from Shape at run time); x1 = x[..., :half], x2 = x[..., half:]
 *   y = x * cos + Concat(−x2, x1) * sin
 * Also the emitter for ONNX RotaryEmbedding-23, which the fusion pass may use where the opset allows.
 */
import { madeBy, type GraphBuilder } from '../../src/ir/builder.js';
import type { Graph, Model, Value } from '../../src/ir/graph.js';
import { dimEq } from '../../src/ir/infer/index.js';
import { Tensor } from '../../src/ir/tensor.js';
import { DataType } from '../../src/onnx/schema.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { ropeSchema } from './schema.js';

export function buildRoPE(b: Body, [x, cos, sin]: Value[]): Value[] {
  const op = b.op;
  const half = op.Div(b.dims(x, -1), b.const([2]));
  const x1 = b.slice(x, b.const([0]), half, -1);
  const x2 = b.slice(x, half, b.const([Number.MAX_SAFE_INTEGER]), -1);
  const rotated = op.Concat(op.Neg(x2), x1, { axis: -1 });
  return [op.Add(op.Mul(x, cos), op.Mul(rotated, sin))];
}

export const rope: FusedOp = { schema: ropeSchema, buildBody: buildRoPE };

/** True where the fusion pass may emit ONNX RotaryEmbedding instead of ai.ortfuse::RoPE. */
export function canUseRotaryEmbedding23(model: Model): boolean {
  return (model.opset('') ?? 0) >= 23;
}

/**
 * ONNX RotaryEmbedding-23 for Qwen2's case: x [B, heads, S, D] (4-D input is read as
 * (batch, heads, seq, head_size)), interleaved=0 (= rotate-half), no position_ids, and caches
 * [B, S, D/2] made from HF's [B|1, 1, S, D] cos/sin by dropping axis 1, keeping the first half of the
 * last axis (the halves repeat) and expanding the batch. Build the caches once and share them
 * between q and k (`rotaryCaches`).
 */
export function rotaryCaches(b: GraphBuilder, x: Value, cos: Value, sin: Value): [Value, Value] {
  const i64 = (v: number[]): Value => b.op.Constant({ value: Tensor.from(DataType.INT64, [v.length], v.map(BigInt)) });
  const half = b.op.Div(b.op.Shape(cos, { start: -1 }), i64([2]));
  const batch = b.op.Shape(x, { start: 0, end: 1 });
  const cache = (t: Value): Value => {
    const c = b.op.Slice(b.op.Squeeze(t, i64([1])), i64([0]), half, i64([-1]));
    return b.op.Expand(c, b.op.Concat(batch, b.op.Shape(c, { start: 1 }), { axis: 0 }));
  };
  return [cache(cos), cache(sin)];
}

/**
 * Caches that an earlier rewrite of rule `rule` built from the same cos/sin for an x of provably the
 * same batch (so q and k share one pair): the cos/sin inputs of its RotaryEmbedding nodes, traced
 * back through its own [Expand](Slice(Squeeze(t))) to t.
 */
export function sharedRotaryCaches(g: Graph, rule: string, x: Value, cos: Value, sin: Value): [Value, Value] | undefined {
  const source = (cache: Value | null): Value | undefined => {
    let n = cache?.producer;
    if (madeBy(n, 'Expand', rule)) n = n.inputs[0]?.producer;
    const s = madeBy(n, 'Slice', rule) ? n.inputs[0]?.producer : undefined;
    return madeBy(s, 'Squeeze', rule) ? s.inputs[0] ?? undefined : undefined;
  };
  const batch = x.tensorType?.shape?.[0] ?? null;
  for (const n of g.nodes) {
    if (!madeBy(n, 'RotaryEmbedding', rule)) continue;
    const [nx, cc, sc] = n.inputs;
    if (source(cc) === cos && source(sc) === sin && dimEq(nx?.tensorType?.shape?.[0] ?? null, batch)) return [cc!, sc!];
  }
  return undefined;
}

export function rotaryEmbedding23(b: GraphBuilder, x: Value, cosCache: Value, sinCache: Value): Value {
  return b.op.RotaryEmbedding(x, cosCache, sinCache, { interleaved: 0 });
}
