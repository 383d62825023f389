/**
 * Portable ONNX function bodies of ai.ortfuse::FusedLinearCrossEntropy (math in schema.ts).
 *
 * Both bodies work on row chunks, so a [c, V] logits chunk is the largest temporary:
 * - 'cpu': a Loop over chunks of `chunk_size` rows (0 = Liger's next_pow2(ceil(N / ceil(V/H))),
 *   computed at run time from the shapes); the last chunk is shorter (Slice clamps). Per-row losses
 *   are a loop-carried [rows so far, 1] tensor grown by Concat (ORT allows carried shapes to change).
 * - 'webgpu': no Loop (it runs on the CPU under WebGPU EPs and copies every iteration): K unrolled
 *   chunks of ceil(N / K) rows (K = num_chunks, fixed when the body is built; trailing chunks may be
 *   empty); no LogSoftmax / SoftmaxCrossEntropyLoss / OneHot.
 *   The label mask (int64 Equal on [N]) is computed once, outside the chunks.
 *
 * Shared pieces: fp32 log-sum-exp max-subtracted by hand (ReduceMax, Sub, Exp, ReduceSum, Log);
 * the target logit by GatherElements; logits via Gemm(transB=1), whose optional C input takes the optional bias (an
 * absent bias stays absent after inlining); the label-smoothing mean Σ_c z_ic / V is computed
 * without logits as hidden · mean_c(W_c) + mean(bias); 'reduction' is read at run time from the
 * string attribute (ReduceSum over axes [] or [0], divided by the count for 'mean').
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { fail } from '../../src/errors.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { linearCrossEntropySchema } from './schema.js';

const F32 = DataType.FLOAT;
export const DEFAULT_NUM_CHUNKS = 8;

interface Prepared {
  hidden: Value;
  weight: Value;
  bias: Value;
  /** [N, 1] labels with ignored rows set to class 0 (safe for GatherElements). */
  safe: Value;
  /** [N, 1] bool: label != ignore_index. */
  valid: Value;
  /** [N, 1] float32: Σ_c z_ic / V. */
  zmean: Value;
  /** float32 scalars ε and 1 − ε. */
  eps: Value;
  keep: Value;
}

export function buildLinearCrossEntropy(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[] {
  const [hidden, weight, bias, labels] = inputs;
  const op = b.op;
  const ax1 = b.const([1]);
  const valid1 = op.Not(op.Equal(labels, b.attrConst('int', 'ignore_index')));
  const safe = op.Unsqueeze(op.Where(valid1, labels, b.const(0)), ax1);
  const valid = op.Unsqueeze(valid1, ax1);
  const count = b.reduce('ReduceSum', op.Cast(valid1, { to: F32 }), [0], false);
  const eps = b.attrConst('float', 'label_smoothing');
  const keep = op.Sub(b.const(1, F32), eps);
  // Σ_c z_ic / V = hidden_i · mean_c W_c + mean(bias); the bias row comes from a [1, H] zeros Gemm
  // so that an absent bias needs no special case.
  const wmean = b.reduce('ReduceMean', weight, [0], true);
  const zerosH = op.CastLike(op.ConstantOfShape(op.Concat(b.const([1]), b.dims(weight, 1, 2), { axis: 0 })), hidden);
  // keepdims: a [1, 1] C, not a scalar: onnxruntime-node 1.30's WebGPU EP aborts the process on a
  // Gemm with a rank-0 C once the product is larger than a few tiles (checked on SwiftShader).
  const bmean = b.reduce('ReduceMean', op.Gemm(zerosH, weight, bias, { transB: 1 }), [0, 1], true);
  const zmean = op.Cast(op.Gemm(hidden, wmean, bmean, { transB: 1 }), { to: F32 });
  const p: Prepared = { hidden, weight, bias, safe, valid, zmean, eps, keep };

  const rows = target === 'cpu' ? loopChunks(b, p) : unrolledChunks(b, p, opts.numChunks ?? DEFAULT_NUM_CHUNKS);
  const flat = op.Reshape(rows, b.const([-1]));
  // reduction: 'none' keeps [N]; 'sum' / 'mean' reduce axis 0, 'mean' divides by the count.
  const isNone = b.attrStringIs('reduction', 'none', opts.reduction);
  const isMean = b.attrStringIs('reduction', 'mean', opts.reduction);
  const nAxes = op.Reshape(op.Cast(op.Not(isNone), { to: DataType.INT64 }), b.const([1]));
  const axes = op.Slice(b.const([0]), b.const([0]), nAxes, b.const([0]));
  const total = b.reduce('ReduceSum', flat, axes, false, { noop_with_empty_axes: 1 });
  return [op.Div(total, op.Where(isMean, count, b.const(1, F32)))];
}

/** Per-row losses [c, 1] of rows `start..end` (1-D int64 bounds; Slice clamps to N). */
function chunkRows(b: Body, p: Prepared, start: Value, end: Value): Value {
  const op = b.op;
  const rows = (x: Value): Value => b.slice(x, start, end, 0);
  const z = op.Cast(op.Gemm(rows(p.hidden), p.weight, p.bias, { transB: 1 }), { to: F32 });
  // Max-subtracted by hand: ORT 1.30's CPU ReduceLogSumExp took 20.8 ms on a [256, 32000] chunk vs
  // 3.8 ms for these ops (medians of 10, interleaved), and WebGPU implementations need not subtract the max.
  const m = b.reduce('ReduceMax', z, [1], true);
  const lse = op.Add(op.Log(b.reduce('ReduceSum', op.Exp(op.Sub(z, m)), [1], true)), m);
  const zt = op.GatherElements(z, rows(p.safe), { axis: 1 });
  const loss = op.Sub(op.Sub(lse, op.Mul(p.keep, zt)), op.Mul(p.eps, rows(p.zmean)));
  return op.Where(rows(p.valid), loss, b.const(0, F32));
}

/**
 * Liger's chunk rows next_pow2(ceil(N / ceil(V / H))) from 1-D int64 [1] dims, at run time:
 * 2^ceil(log2(q) − 1e-9) in float64 (exact for q < 2^30).
 */
export function ligerChunk(b: Body, n: Value, v: Value, h: Value): Value {
  const op = b.op;
  const one = b.const([1]);
  const ceilDiv = (a: Value, d: Value): Value => op.Div(op.Sub(op.Add(a, d), one), d);
  const q = op.Cast(op.Max(ceilDiv(n, ceilDiv(v, h)), one), { to: DataType.DOUBLE });
  const log2q = op.Div(op.Log(q), b.const(Math.LN2, DataType.DOUBLE, []));
  const k = op.Ceil(op.Sub(log2q, b.const(1e-9, DataType.DOUBLE, [])));
  return op.Cast(op.Pow(b.const(2, DataType.DOUBLE, []), k), { to: DataType.INT64 });
}

function loopChunks(b: Body, p: Prepared): Value {
  const op = b.op;
  const n = b.dims(p.hidden, 0, 1);
  const v = b.dims(p.weight, 0, 1);
  const h = b.dims(p.weight, 1, 2);
  const one = b.const([1]);
  const ceilDiv = (a: Value, d: Value): Value => op.Div(op.Sub(op.Add(a, d), one), d);
  const auto = ligerChunk(b, n, v, h);
  const requested = op.Reshape(b.attrConst('int', 'chunk_size'), one);
  const chunk = op.Where(op.Greater(requested, b.const([0])), requested, auto);
  const trips = b.scalar(ceilDiv(n, chunk));

  const { body, iter, carried } = b.loopBody('linear_ce_chunk', [{ name: 'rows_in', elem: F32, shape: [null, 1] }]);
  const start = body.op.Mul(body.op.Unsqueeze(iter, body.const([0])), chunk);
  const end = body.op.Add(start, chunk);
  const rowsOut = body.op.Concat(carried[0], chunkRows(body, p, start, end), { axis: 0 });
  const empty = b.const([], F32, [0, 1]);
  return b.loop(body, trips, [empty], [rowsOut])[0];
}

function unrolledChunks(b: Body, p: Prepared, k: number): Value {
  if (!Number.isInteger(k) || k < 1) fail('usage', `FusedLinearCrossEntropy webgpu body: num_chunks must be a positive integer, got ${k}`);
  const op = b.op;
  const n = b.dims(p.hidden, 0, 1);
  const chunk = op.Div(op.Add(n, b.const([k - 1])), b.const([k]));
  const parts: Value[] = [];
  for (let i = 0; i < k; i++) {
    const start = i === 0 ? b.const([0]) : op.Mul(chunk, b.const([i]));
    parts.push(chunkRows(b, p, start, op.Add(start, chunk)));
  }
  return parts.length === 1 ? parts[0] : op.Concat(...parts, { axis: 0 });
}

/**
 * Body options from the model's nodes: the reduction when every caller uses the same one (else it
 * is compared at run time, which the webgpu build of onnxruntime-web cannot do), and for webgpu
 * num_chunks (they must agree; 0 = default).
 */
function bodyOptions(nodes: Node[], target: Target): BodyOptions {
  const reductions = new Set(nodes.map((n) => n.attrString('reduction', 'mean')));
  const reduction = reductions.size === 1 ? [...reductions][0] : undefined;
  if (target !== 'webgpu') return { reduction };
  if (reduction === undefined && nodes.length > 1) fail('unsupported', `FusedLinearCrossEntropy nodes use different reductions (${[...reductions].join(', ')}); the webgpu body needs one`);
  const ks = new Set(nodes.map((n) => n.attrInt('num_chunks', 0)).filter((k) => k > 0));
  if (ks.size > 1) fail('unsupported', `FusedLinearCrossEntropy nodes ask for different num_chunks (${[...ks].join(', ')}); one webgpu body serves them all`);
  return { numChunks: ks.size ? [...ks][0] : DEFAULT_NUM_CHUNKS, reduction };
}

export const fusedLinearCrossEntropy: FusedOp = {
  schema: linearCrossEntropySchema,
  buildBody: buildLinearCrossEntropy,
  bodyOptions,
};
