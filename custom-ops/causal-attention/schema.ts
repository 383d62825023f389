/**
 * ai.ortfuse::CausalAttention (version 1): causal grouped-query attention over already projected,
 * RoPE'd heads, as transformers' eager Qwen2 attention (`softmax(q·kᵀ·scaling + causal_mask)·v`
 * after `repeat_kv`) and torch's scaled_dot_product_attention(is_causal=True, enable_gqa=True)
 * (https://pytorch.org/docs/stable/generated/torch.nn.functional.scaled_dot_product_attention.html):
 *
 *   g = Hq / Hkv;  query head h reads kv head ⌊h / g⌋
 *   s[t, u] = scale · q[h, t]·k[⌊h/g⌋, u]  for u ≤ t  (keys after t are masked out)
 *   lse[t]  = log Σ_{u ≤ t} exp(s[t, u])
 *   o[t]    = Σ_{u ≤ t} exp(s[t, u] − lse[t]) · v[⌊h/g⌋, u]
 *
 * q [B, Hq, T, D], k and v [B, Hkv, T, D] (Hq a multiple of Hkv) share the element type; o has q's
 * shape, lse is [B, Hq, T] (kept for the backward, CausalAttentionGrad, which recomputes the
 * probabilities from it: nothing [T, T] is saved). No padding mask: the fusion only fires where the
 * model's mask is exactly causal (passes/fuse-causal-attention.ts). Under precision 'f16' the
 * operands of its products (q and k for the scores, the probabilities and v for o) are rounded to
 * IEEE half, the products accumulated in fp32 (../precision.ts); the softmax stays fp32.
 */
import { DataType } from '../../src/onnx/schema.js';
import { formatShape, tensorType, type Dim, type TensorType } from '../../src/ir/types.js';
import { PRECISION_ATTR } from '../precision.js';
import { expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type Attrs, type FusedOpSchema, type IoSpec } from '../../src/fused/types.js';

export const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

/** Checks q [B, Hq, T, D], k and v [B, Hkv, T, D] with Hkv dividing Hq; returns q's shape (settled) and lse's. */
export function checkAttentionInputs(where: string, types: (TensorType | undefined)[], inputs: readonly IoSpec[], attrs: Attrs): { elem: number; q?: Dim[]; kv?: Dim[]; lse?: Dim[] } {
  const scale = Number(attrs.scale);
  if (!Number.isFinite(scale) || scale <= 0) invalid(where, `scale=${attrs.scale} must be a finite number > 0`);
  const [tq, tk, tv] = types;
  const qs = expectInput(where, inputs[0], tq, 4);
  const ks = expectInput(where, inputs[1], tk, 4);
  const vs = expectInput(where, inputs[2], tv, 4);
  let elem = sameElem(where, ['q', 'k'], tq, tk);
  elem = sameElem(where, ['q', 'v'], tq, tv) || elem;
  const shapes = `q ${formatShape(qs)}, k ${formatShape(ks)}, v ${formatShape(vs)}; expected [B, Hq, T, D], [B, Hkv, T, D], [B, Hkv, T, D]`;
  const d = (s: Dim[] | undefined, i: number): Dim => s?.[i] ?? null;
  let b = sameDim(where, `batch differs (${shapes})`, d(qs, 0), d(ks, 0));
  b = sameDim(where, `batch differs (${shapes})`, b, d(vs, 0));
  let t = sameDim(where, `sequence length differs (${shapes})`, d(qs, 2), d(ks, 2));
  t = sameDim(where, `sequence length differs (${shapes})`, t, d(vs, 2));
  let hd = sameDim(where, `head size differs (${shapes})`, d(qs, 3), d(ks, 3));
  hd = sameDim(where, `head size differs (${shapes})`, hd, d(vs, 3));
  const hkv = sameDim(where, `kv head count differs (${shapes})`, d(ks, 1), d(vs, 1));
  const hq = d(qs, 1);
  if (typeof hq === 'number' && typeof hkv === 'number' && (hkv < 1 || hq % hkv !== 0))
    invalid(where, `query heads ${hq} are not a multiple of kv heads ${hkv} (${shapes})`);
  return {
    elem,
    q: qs ? [b, hq, t, hd] : undefined,
    kv: ks || vs ? [b, hkv, t, hd] : undefined,
    lse: qs ? [b, hq, t] : undefined,
  };
}

export const causalAttentionSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'CausalAttention',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'q', types: FLOATS, doc: "[B, Hq, T, D] queries (after RoPE)" },
    { name: 'k', types: FLOATS, doc: '[B, Hkv, T, D] keys (after RoPE), not repeated for GQA' },
    { name: 'v', types: FLOATS, doc: '[B, Hkv, T, D] values, not repeated for GQA' },
  ],
  outputs: [
    { name: 'o', types: FLOATS, doc: "[B, Hq, T, D], q's type" },
    { name: 'lse', types: FLOATS, doc: '[B, Hq, T] log-sum-exp of each row of scaled, masked scores' },
  ],
  attributes: [{ name: 'scale', type: 'FLOAT', default: 1, doc: 'multiplies q·kᵀ (Qwen2: 1/√D)' }, PRECISION_ATTR],
  check(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
    const { elem, q, lse } = checkAttentionInputs(where, types, causalAttentionSchema.inputs, attrs);
    return [tensorType(elem, q), tensorType(elem, lse)];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferCausalAttention = inferRule(causalAttentionSchema);

/** One CausalAttention call's sizes and scale (q [b, hq, t, d], k and v [b, hkv, t, d]). */
export interface AttnDims {
  b: number;
  hq: number;
  hkv: number;
  t: number;
  d: number;
  scale: number;
}
