/**
 * ai.ortfuse::FusedLinearCrossEntropy (version 1): the lm_head projection fused with the
 * cross-entropy loss, so the [N, V] logits never exist at once.
 *
 *   z_i   = hidden_i · weightᵀ + bias                     (logits of row i, weight in nn.Linear layout [V, H])
 *   lse_i = log Σ_c exp(z_ic)                              (fp32)
 *   l_i   = lse_i − (1 − ε)·z_{i,y_i} − ε·(1/V)·Σ_c z_ic   (ε = label_smoothing; torch's definition)
 *   l_i   = 0 where y_i == ignore_index
 *   loss  = Σ_i l_i / #{i : y_i != ignore_index}  ('mean'; NaN when every label is ignored, as torch)
 *         | Σ_i l_i ('sum') | [l_0 .. l_{N-1}] ('none')
 *
 * Follows torch.nn.functional.cross_entropy (https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html)
 * on logits = F.linear(hidden, weight, bias), without class weights; chunking as Liger-Kernel's
 * fused_linear_cross_entropy (chunk = next_pow2(ceil(N / ceil(V / H))) rows).
 *
 * Inputs are flattened: hidden [N, H], labels [N] (the fusion pass adds the Reshapes and the label
 * shift). The loss is float32 whatever the input precision (softmax math in fp32, as Liger).
 * precision 'f16' rounds the GEMM operands (hidden, weight, and the gradients' Q) to float16 with
 * fp32 accumulation (../precision.ts; chunks.ts for the gradient's operand range).
 */
import { DataType } from '../../src/onnx/schema.js';
import { tensorType, type TensorType } from '../../src/ir/types.js';
import {
  checkAttrValues, expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem,
  type Attrs, type FusedOpSchema,
} from '../../src/fused/types.js';

import { PRECISION_ATTR } from '../precision.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

export const REDUCTIONS = ['mean', 'sum', 'none'] as const;
export type Reduction = (typeof REDUCTIONS)[number];

export const linearCrossEntropySchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'FusedLinearCrossEntropy',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'hidden', types: FLOATS, doc: '[N, H] last hidden states, flattened over batch and sequence' },
    { name: 'weight', types: FLOATS, doc: '[V, H] lm_head weight (nn.Linear layout: logits = hidden · weightᵀ)' },
    { name: 'bias', types: FLOATS, optional: true, doc: '[V] lm_head bias; pass an empty input name when absent' },
    { name: 'labels', types: [DataType.INT64], doc: '[N] target class per row (already shifted), ignore_index rows excluded' },
  ],
  outputs: [{ name: 'loss', types: [DataType.FLOAT], doc: "float32 scalar ('mean', 'sum') or [N] ('none')" }],
  attributes: [
    { name: 'ignore_index', type: 'INT', default: -100, doc: 'label value whose rows contribute no loss' },
    { name: 'reduction', type: 'STRING', default: 'mean', values: REDUCTIONS, doc: "'mean' over non-ignored rows, 'sum', or 'none' (per-row [N])" },
    { name: 'label_smoothing', type: 'FLOAT', default: 0, doc: 'ε in [0, 1], as torch cross_entropy' },
    { name: 'chunk_size', type: 'INT', default: 0, doc: 'cpu body: rows per chunk; 0 = Liger rule next_pow2(ceil(N / ceil(V / H)))' },
    { name: 'num_chunks', type: 'INT', default: 0, doc: 'webgpu body: number of unrolled chunks (read when the body is built); 0 = 8' },
    PRECISION_ATTR,
  ],
  check: checkLinearCrossEntropy,
};

function checkLinearCrossEntropy(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
  const s = linearCrossEntropySchema;
  checkAttrValues(where, s, attrs);
  const eps = Number(attrs.label_smoothing);
  if (!(eps >= 0 && eps <= 1)) invalid(where, `label_smoothing=${eps} must be in [0, 1]`);
  if (Number(attrs.chunk_size) < 0) invalid(where, `chunk_size=${attrs.chunk_size} must be >= 0`);
  if (Number(attrs.num_chunks) < 0) invalid(where, `num_chunks=${attrs.num_chunks} must be >= 0`);
  const [th, tw, tb, tl] = types;
  const hs = expectInput(where, s.inputs[0], th, 2);
  const ws = expectInput(where, s.inputs[1], tw, 2);
  const bs = expectInput(where, s.inputs[2], tb, 1);
  const ls = expectInput(where, s.inputs[3], tl, 1);
  sameElem(where, ['hidden', 'weight'], th, tw);
  if (tb) sameElem(where, ['weight', 'bias'], tw, tb);
  sameDim(where, `hidden ${fmt(hs)} and weight ${fmt(ws)} disagree on H`, hs?.[1], ws?.[1]);
  if (bs) sameDim(where, `bias ${fmt(bs)} and weight ${fmt(ws)} disagree on V`, bs[0], ws?.[0]);
  const n = sameDim(where, `hidden ${fmt(hs)} and labels ${fmt(ls)} disagree on N (pass both flattened)`, hs?.[0], ls?.[0]);
  return [tensorType(DataType.FLOAT, attrs.reduction === 'none' ? [n] : [])];
}

const fmt = (s: unknown[] | undefined): string => (s ? `[${s.map((d) => d ?? '?').join(',')}]` : '[?]');

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferFusedLinearCrossEntropy = inferRule(linearCrossEntropySchema);

/**
 * Rows per chunk of the WebGPU kernel (./webgpu/flce.ts gpuChunkRows) at least: GPU_CHUNK_ROWS
 * budget-free; under `--memory-budget` the step graph's FLCE node carries chunk_size
 * GPU_BUDGET_CHUNK_ROWS (src/runtime/session.ts), the logits tile the budgets were calibrated with.
 * H200, 0.5B 8×512 (V = 151,936; session 12, bench/results/step-speed-h200-s12.md): 1024 rows
 * instead of 256 took the fp32 step 428 → 415 ms and the mixed one 262 → 245 ms for one
 * [1024, V] fp32 tile instead of [256, V]: +0.47 GiB (13.36 → 13.82, 10.46 → 10.93 by nvidia-smi).
 */
export const GPU_CHUNK_ROWS = 1024;
export const GPU_BUDGET_CHUNK_ROWS = 256;

/** Liger's chunk size: next_pow2(ceil(N / ceil(V / H))), at least 1. */
export function ligerChunkSize(n: number, v: number, h: number): number {
  const rows = Math.ceil(n / Math.ceil(v / h));
  let c = 1;
  while (c < rows) c *= 2;
  return c;
}
