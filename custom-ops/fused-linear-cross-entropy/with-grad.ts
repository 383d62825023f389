/**
 * Portable ONNX function bodies of ai.ortfuse::FusedLinearCrossEntropyWithGrad (math in
 * with-grad-schema.ts): loss and gradients in one pass over row chunks, as Liger-Kernel: the chunk
 * of chunks.ts with the flags loss 'sum' and grads (k_i = [y_i ≠ ignore_index] / #valid for
 * 'mean', the indicator alone for 'sum').
 *
 * - 'cpu': a Loop over chunks of `chunk_size` rows (0 = max(Liger's rule, 256), at most N);
 *   grad_weight and grad_bias are loop-carried accumulators (grad_weight through Gemm's C input,
 *   so one [V, H] result per chunk), the loss sum a carried scalar, the grad_hidden rows a carried
 *   tensor grown by Concat.
 * - 'webgpu': K = num_chunks unrolled chunks of ceil(N / K) rows (no Loop: under WebGPU EPs it runs
 *   on the CPU); grad_weight is a chain of Gemms through C, grad_hidden one Concat.
 */
import { fail } from '../../src/errors.js';
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { fusedLinearCrossEntropy, DEFAULT_NUM_CHUNKS } from './function.js';
import { gradStart, labelRows, logitMean, loopChunkRows, loopChunks, unrolledChunks, type ChunkFlags, type Rows, type Shared } from './chunks.js';
import { linearCrossEntropyWithGradSchema } from './with-grad-schema.js';

const F32 = DataType.FLOAT;
/**
 * 'cpu' default chunk: max(Liger's rule, 256) rows (at most N). Liger's rule targets GPU memory; on
 * the CPU EP its small chunks re-read and re-write the [V, H] grad_weight accumulator per chunk:
 * [4096, 896] x [896, 151936] loss+grads took 37 s at its 32 rows, 33 s at 128, 26 s at 512
 * (unfused: 32 s), for +0.3 / +0.6 GB (bench/results/train-flce-rss.md).
 */
export const MIN_CPU_CHUNK = 256;
const FLAGS: ChunkFlags = { loss: 'sum', grads: true };

export function buildLinearCrossEntropyWithGrad(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[] {
  if (b.opset < 16) fail('unsupported', `FusedLinearCrossEntropyWithGrad needs ONNX opset >= 16 (ScatterElements with reduction), the model imports ${b.opset}`);
  const [hidden, weight, bias, labels] = inputs;
  const op = b.op;
  const ax1 = b.const([1]);
  const { valid, validF, count, safe } = labelRows(b, labels, b.attrConst('int', 'ignore_index'));
  const isMean = b.attrStringIs('reduction', 'mean', opts.reduction);
  const one = b.const(1, F32);
  const eps = b.attrConst('float', 'label_smoothing');
  const k = op.CastLike(op.Unsqueeze(op.Mul(validF, op.Where(isMean, op.Div(one, op.Max(count, one)), one)), ax1), hidden);
  const { dhShift, ...acc } = gradStart(b, hidden, weight, k, eps);
  const shared: Shared = { weight, bias, eps, keep: op.Sub(one, eps), dhShift };
  const r: Rows = { hidden, k, safe, valid, zmean: logitMean(b, hidden, weight, bias) };
  const t = target === 'cpu'
    ? loopChunks(b, 'linear_ce_grad_chunk', shared, r, FLAGS, loopChunkRows(b, hidden, weight, op.Reshape(b.attrConst('int', 'chunk_size'), ax1), MIN_CPU_CHUNK), acc)
    : unrolledChunks(b, shared, r, FLAGS, opts.numChunks ?? DEFAULT_NUM_CHUNKS, acc, 'FusedLinearCrossEntropyWithGrad');
  const loss = op.Div(t.loss!, op.Where(isMean, count, one)); // NaN for 'mean' when every label is ignored (torch)
  return [loss, t.dh!, t.dw!, t.db!];
}

export const fusedLinearCrossEntropyWithGrad: FusedOp = {
  schema: linearCrossEntropyWithGradSchema,
  buildBody: buildLinearCrossEntropyWithGrad,
  bodyOptions: fusedLinearCrossEntropy.bodyOptions,
};
