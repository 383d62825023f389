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
 * The chunk itself (fp32 log-sum-exp max-subtracted by hand, the target logit by GatherElements,
 * logits by Gemm(transB=1) whose optional C takes the optional bias, the label-smoothing mean
 * without logits) is chunks.ts's, with the flag loss 'rows'. 'reduction' is read at run time from
 * the string attribute (ReduceSum over axes [] or [0], divided by the count for 'mean').
 */
import { DataType } from '../../src/onnx/schema.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { fail } from '../../src/errors.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { linearCrossEntropySchema } from './schema.js';
import { labelRows, logitMean, loopChunkRows, loopChunks, roundF16Inputs, unrolledChunks, type ChunkFlags, type Rows, type Shared } from './chunks.js';
import { precisionOption } from '../precision.js';

const F32 = DataType.FLOAT;
export const DEFAULT_NUM_CHUNKS = 8;
const LOSS: ChunkFlags = { loss: 'rows' };

export function buildLinearCrossEntropy(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[] {
  const [, , bias, labels] = inputs;
  const op = b.op;
  // Precision 'f16': the logits (and their mean) from hidden and weight rounded through float16.
  const { hidden, weight } = opts.precision === 'f16' ? roundF16Inputs(b, inputs[0], inputs[1]) : { hidden: inputs[0], weight: inputs[1] };
  const { valid, safe, count } = labelRows(b, labels, b.attrConst('int', 'ignore_index'));
  const eps = b.attrConst('float', 'label_smoothing');
  const shared: Shared = { weight, bias, eps, keep: op.Sub(b.const(1, F32), eps) };
  const r: Rows = { hidden, safe, valid, zmean: logitMean(b, hidden, weight, bias) };
  const rows = target === 'cpu'
    ? loopChunks(b, 'linear_ce_chunk', shared, r, LOSS, loopChunkRows(b, hidden, weight, op.Reshape(b.attrConst('int', 'chunk_size'), b.const([1])))).loss!
    : unrolledChunks(b, shared, r, LOSS, opts.numChunks ?? DEFAULT_NUM_CHUNKS, {}, 'FusedLinearCrossEntropy').loss!;
  const flat = op.Reshape(rows, b.const([-1]));
  // reduction: 'none' keeps [N]; 'sum' / 'mean' reduce axis 0, 'mean' divides by the count.
  const isNone = b.attrStringIs('reduction', 'none', opts.reduction);
  const isMean = b.attrStringIs('reduction', 'mean', opts.reduction);
  const nAxes = op.Reshape(op.Cast(op.Not(isNone), { to: DataType.INT64 }), b.const([1]));
  const axes = op.Slice(b.const([0]), b.const([0]), nAxes, b.const([0]));
  const total = b.reduce('ReduceSum', flat, axes, false, { noop_with_empty_axes: 1 });
  return [op.Div(total, op.Where(isMean, count, b.const(1, F32)))];
}

/**
 * Body options from the model's nodes: the reduction when every caller uses the same one (else it
 * is compared at run time, which the webgpu build of onnxruntime-web cannot do), the precision
 * (they must agree), and for webgpu num_chunks (they must agree; 0 = default).
 */
function bodyOptions(nodes: Node[], target: Target): BodyOptions {
  const reductions = new Set(nodes.map((n) => n.attrString('reduction', 'mean')));
  const reduction = reductions.size === 1 ? [...reductions][0] : undefined;
  const precision = precisionOption(nodes, target, 'FusedLinearCrossEntropy', false);
  if (target !== 'webgpu') return { reduction, ...precision };
  if (reduction === undefined && nodes.length > 1) fail('unsupported', `FusedLinearCrossEntropy nodes use different reductions (${[...reductions].join(', ')}); the webgpu body needs one`);
  const ks = new Set(nodes.map((n) => n.attrInt('num_chunks', 0)).filter((k) => k > 0));
  if (ks.size > 1) fail('unsupported', `FusedLinearCrossEntropy nodes ask for different num_chunks (${[...ks].join(', ')}); one webgpu body serves them all`);
  return { numChunks: ks.size ? [...ks][0] : DEFAULT_NUM_CHUNKS, reduction, ...precision };
}

export const fusedLinearCrossEntropy: FusedOp = {
  schema: linearCrossEntropySchema,
  buildBody: buildLinearCrossEntropy,
  bodyOptions,
};
