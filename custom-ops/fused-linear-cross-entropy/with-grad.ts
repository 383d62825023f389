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
 *
 * Precision 'f16': hidden and weight rounded through float16 once, Q' rounded per chunk, 1/#valid
 * applied after the grad_weight GEMM (chunks.ts).
 *
 * grad_scale (when the callers pass it: BodyOptions.gradScale) joins that scalar factor, k's
 * 1/#valid or 1, so it costs one scalar Mul, never one over a gradient.
 */
import { fail } from '../../src/errors.js';
import { DataType } from '../../src/onnx/schema.js';
import type { Node, Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { fusedLinearCrossEntropy, DEFAULT_NUM_CHUNKS } from './function.js';
import { gradStart, gradStartF16, labelRows, logitMean, loopChunkRows, loopChunks, roundF16Inputs, unrolledChunks, type ChunkFlags, type Rows, type Shared } from './chunks.js';
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
  const [hidden0, weight0, bias, labels, gradScale] = inputs;
  const op = b.op;
  const ax1 = b.const([1]);
  const { valid, validF, count, safe } = labelRows(b, labels, b.attrConst('int', 'ignore_index'));
  const isMean = b.attrStringIs('reduction', 'mean', opts.reduction);
  const one = b.const(1, F32);
  const eps = b.attrConst('float', 'label_smoothing');
  const perValid = op.Where(isMean, op.Div(one, op.Max(count, one)), one);
  const kScale = opts.gradScale ? op.Mul(perValid, gradScale) : perValid;
  const k = op.CastLike(op.Unsqueeze(op.Mul(validF, kScale), ax1), hidden0);
  let shared: Shared, r: Rows, acc: { dw: Value; db?: Value }, scaleDw = (dw: Value) => dw;
  if (opts.precision === 'f16') {
    // GEMM operands rounded to float16; 1/#valid after the dW GEMMs (chunks.ts header).
    const { hidden, weight } = roundF16Inputs(b, hidden0, weight0);
    const { f16, hk, scale, ...start } = gradStartF16(b, hidden0, weight0, op.CastLike(op.Unsqueeze(validF, ax1), hidden0), kScale, eps);
    acc = start;
    scaleDw = scale;
    shared = { weight, bias, eps, keep: op.Sub(one, eps), f16 };
    r = { hidden, k, hk, safe, valid, zmean: logitMean(b, hidden, weight, bias) };
  } else {
    const { dhShift, ...start } = gradStart(b, hidden0, weight0, k, eps);
    acc = start;
    shared = { weight: weight0, bias, eps, keep: op.Sub(one, eps), dhShift };
    r = { hidden: hidden0, k, safe, valid, zmean: logitMean(b, hidden0, weight0, bias) };
  }
  const hidden = r.hidden, weight = shared.weight;
  const t = target === 'cpu'
    ? loopChunks(b, 'linear_ce_grad_chunk', shared, r, FLAGS, loopChunkRows(b, hidden, weight, op.Reshape(b.attrConst('int', 'chunk_size'), ax1), MIN_CPU_CHUNK), acc)
    : unrolledChunks(b, shared, r, FLAGS, opts.numChunks ?? DEFAULT_NUM_CHUNKS, acc, 'FusedLinearCrossEntropyWithGrad');
  const loss = op.Div(t.loss!, op.Where(isMean, count, one)); // NaN for 'mean' when every label is ignored (torch)
  return [loss, t.dh!, scaleDw(t.dw!), t.db!];
}

/** FusedLinearCrossEntropy's options, and whether the callers pass grad_scale (all or none). */
function bodyOptions(nodes: Node[], target: Target): BodyOptions {
  const opts = fusedLinearCrossEntropy.bodyOptions!(nodes, target);
  const scaled = nodes.filter((n) => n.inputs[4]);
  if (scaled.length && scaled.length < nodes.length)
    fail('unsupported', `FusedLinearCrossEntropyWithGrad: ${scaled[0].label} passes grad_scale and ${nodes.find((n) => !n.inputs[4])!.label} does not; one body serves them all`);
  return scaled.length ? { ...opts, gradScale: true } : opts;
}

export const fusedLinearCrossEntropyWithGrad: FusedOp = {
  schema: linearCrossEntropyWithGradSchema,
  buildBody: buildLinearCrossEntropyWithGrad,
  bodyOptions,
  // grad_scale is a formal input only where a caller passes it: without it, the body is as before the input existed.
  formalInputs: (opts) => (opts.gradScale ? 5 : 4),
};
