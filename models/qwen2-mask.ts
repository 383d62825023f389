/**
 * Positions, the causal mask and the RoPE tables as torch 2.11 exports transformers 5.17's
 * Qwen2Model (eager attention): position_ids = arange(seq)[None]; the mask is
 * `causal(q, kv) & packed(b, q) == packed(b, kv)` where `packed` numbers packed sequences by
 * cumsum(diff(position_ids) != 1) (transformers' find_packed_sequence_indices), indexed with
 * GatherND, and turned into an additive float mask Where(mask, 0, -FLT_MAX). RoPE:
 * emb = cat(freqs, freqs), freqs = (inv_freq[None, :, None] @ position_ids[:, None, :]).T.
 */
import { DataType } from '../src/onnx/schema.js';
import type { Value } from '../src/ir/graph.js';
import { headDim } from './config.js';
import type { BuildContext } from './qwen2-context.js';

/** float32's lowest value, the eager mask's fill. */
const FLT_LOWEST = -3.4028234663852886e38;

export interface Prelude {
  /** int64 [1]: Shape(input_ids)[0:1], Shape(labels)[1:2]. */
  batch: Value;
  seq: Value;
  embeds: Value;
  mask: Value;
  cos: Value;
  sin: Value;
}

/** `b[idx]` gathered from `packed` [batch, seq] for broadcastable index tensors, via GatherND. */
function gatherPacked(ctx: BuildContext, packed: Value, bIdx: Value, tIdx: Value): Value {
  const op = ctx.op;
  const shape = op.Shape(op.Max(bIdx, tIdx), { start: 0 });
  const bi = op.Unsqueeze(op.Expand(bIdx, shape), ctx.ints([-1]));
  const ti = op.Unsqueeze(op.Expand(tIdx, shape), ctx.ints([-1]));
  return op.GatherND(packed, op.Concat(bi, ti, { axis: -1 }), { batch_dims: 0 });
}

/** Everything before the first decoder layer. `embedWeight` is the embedding table. */
export function prelude(ctx: BuildContext, inputIds: Value, labels: Value, embedWeight: Value): Prelude {
  const op = ctx.op;
  const batch = op.Shape(inputIds, { end: 1, start: 0 });
  const batchScalar = op.Squeeze(batch);
  const seq = op.Shape(labels, { end: 2, start: 1 });
  const seqScalar = op.Squeeze(seq);
  const embeds = op.Gather(embedWeight, inputIds, { axis: 0 });

  // position_ids = arange(seq)[None], expanded to [batch, seq] for the packed-sequence test.
  const arange = op.Range(ctx.int(0), seqScalar, ctx.int(1));
  const positionIds = op.Unsqueeze(arange, ctx.ints([0]));
  const posB = op.Expand(positionIds, op.Concat(batch, ctx.ints([1]), { axis: 0 }));
  const first = op.Sub(op.Slice(posB, ctx.ints([0]), ctx.ints([1]), ctx.ints([1]), ctx.ints([1])), ctx.int(1));
  const withFirst = op.Concat(first, posB, { axis: -1 });
  const end = op.Add(ctx.int(1), seqScalar);
  const prev = op.Slice(withFirst, ctx.ints([0]), seq, ctx.ints([-1]), ctx.ints([1]));
  const next = op.Slice(withFirst, ctx.ints([1]), op.Reshape(end, ctx.ints([-1]), { allowzero: 0 }), ctx.ints([-1]), ctx.ints([1]));
  const starts = op.Not(op.Equal(op.Sub(next, prev), ctx.int(1)));
  const packed = op.CumSum(op.Cast(starts, { to: DataType.INT64 }), ctx.int(-1), { reverse: 0, exclusive: 0 });

  // Index grids [batch,1,1,1], q [1,1,seq,1], kv [1,1,1,seq].
  const bIdx = op.Unsqueeze(op.Unsqueeze(op.Range(ctx.int(0), batchScalar, ctx.int(1)), ctx.ints([1, 2])), ctx.ints([3]));
  const pos2 = op.Unsqueeze(arange, ctx.ints([0, 1]));
  const qIdx = op.Unsqueeze(pos2, ctx.ints([3]));
  const kvIdx = op.Unsqueeze(pos2, ctx.ints([2]));
  const causal = op.And(ctx.bool(true), op.LessOrEqual(kvIdx, qIdx));
  const samePacked = op.Equal(gatherPacked(ctx, packed, bIdx, qIdx), gatherPacked(ctx, packed, bIdx, kvIdx));
  const mask = op.Where(op.And(causal, samePacked), ctx.float(0), ctx.float(FLT_LOWEST));

  // RoPE tables [1, seq, hd].
  const hd = headDim(ctx.config);
  // inv_freq = 1 / theta ** (arange(0, hd, 2) / hd), rounded to float32 at each step as torch does.
  const f = Math.fround;
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => f(1 / f(Math.pow(ctx.config.rope_theta, f(f(2 * i) / hd)))));
  const posF = op.Cast(op.Unsqueeze(positionIds, ctx.ints([1])), { to: DataType.FLOAT });
  const freqs = op.Transpose(op.MatMul(ctx.floats([1, hd / 2, 1], invFreq), posF), { perm: [0, 2, 1] });
  const emb = op.Concat(freqs, freqs, { axis: -1 });
  return { batch, seq, embeds, mask, cos: op.Cos(emb), sin: op.Sin(emb) };
}
