/**
 * ai.ortfuse::Linear (version 1): one nn.Linear layer (https://pytorch.org/docs/stable/generated/torch.nn.Linear.html),
 *
 *   y = x·wᵀ + bias   (trans_b = 1, w [N, K], nn.Linear's layout)
 *   y = x·w  + bias   (trans_b = 0, w [K, N], a weight the exporter stored transposed: `val_N`)
 *
 * x [..., K] of rank ≥ 2 (its leading axes are rows), bias [N] optional, y [..., N] with x's
 * element type. Under precision 'f16' the GEMM operands x and w are rounded to IEEE half, the
 * products accumulated in fp32 (../precision.ts). One op so the webgpu backend runs the attention
 * projections (q, k, v with bias, o without) on our GEMM; its gradient is LinearGrad (grad-schema.ts).
 */
import { DataType } from '../../src/onnx/schema.js';
import { formatShape, tensorType, type Dim, type TensorType } from '../../src/ir/types.js';
import { checkAttrValues, expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type Attrs, type FusedOpSchema, type IoSpec } from '../../src/fused/types.js';
import { PRECISION_ATTR } from '../precision.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

export const TRANS_B_ATTR = { name: 'trans_b', type: 'INT', default: 1, doc: '1: w is [N, K] (y = x·wᵀ); 0: w is [K, N] (y = x·w)' } as const;

/** trans_b of resolved attributes, or an error naming `where` when it is not 0 or 1. */
export function transBOf(where: string, attrs: Attrs): 0 | 1 {
  const t = Number(attrs.trans_b ?? 1);
  if (t !== 0 && t !== 1) invalid(where, `attribute trans_b=${attrs.trans_b} must be 0 or 1`);
  return t as 0 | 1;
}

/** Checks x [..., K] (rank ≥ 2) and w ([N, K] or [K, N] by trans_b); returns the element type, x's shape, K and N. */
export function checkLinearInputs(where: string, types: (TensorType | undefined)[], inputs: readonly IoSpec[], attrs: Attrs): { elem: number; x?: Dim[]; k: Dim; n: Dim } {
  const transB = transBOf(where, attrs);
  const [tx, tw] = types;
  const xs = expectInput(where, inputs[0], tx);
  const ws = expectInput(where, inputs[1], tw, 2);
  const elem = sameElem(where, ['x', 'w'], tx, tw);
  if (xs && xs.length < 2) invalid(where, `input 'x' has shape ${formatShape(xs)}, expected rank >= 2 ([..., K])`);
  const layout = transB ? '[N, K]' : '[K, N]';
  const k = sameDim(where, `x ${formatShape(xs)} and w ${formatShape(ws)} disagree on K (trans_b=${transB}: w is ${layout})`, xs?.[xs.length - 1], ws?.[transB ? 1 : 0]);
  const n: Dim = ws?.[transB ? 0 : 1] ?? null;
  return { elem, x: xs && [...xs.slice(0, -1), k], k, n };
}

export const linearSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'Linear',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'x', types: FLOATS, doc: '[..., K] the input, rank >= 2 (leading axes are rows)' },
    { name: 'w', types: FLOATS, doc: '[N, K] (trans_b=1, nn.Linear.weight) or [K, N] (trans_b=0)' },
    { name: 'bias', types: FLOATS, optional: true, doc: '[N]; pass an empty input name when absent' },
  ],
  outputs: [{ name: 'y', types: FLOATS, doc: "[..., N], x's element type" }],
  attributes: [TRANS_B_ATTR, PRECISION_ATTR],
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    checkAttrValues(where, linearSchema, attrs);
    const { elem, x, n: n0 } = checkLinearInputs(where, types, linearSchema.inputs, attrs);
    let n = n0;
    const tb = types[2];
    if (tb) {
      const bs = expectInput(where, linearSchema.inputs[2], tb, 1);
      sameElem(where, ['x', 'bias'], types[0], tb);
      n = sameDim(where, `bias ${formatShape(bs)} and w ${formatShape(types[1]?.shape)} disagree on N`, n, bs?.[0]);
    }
    return [tensorType(elem, x && [...x.slice(0, -1), n])];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferLinear = inferRule(linearSchema);
