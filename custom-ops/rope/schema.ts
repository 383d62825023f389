/**
 * ai.ortfuse::RoPE (version 1): rotary position embedding in the rotate-half (non-interleaved)
 * layout used by HF transformers' Qwen2 (apply_rotary_pos_emb):
 *
 *   rotate_half(x) = concat(−x[..., D/2:], x[..., :D/2])
 *   y = x * cos + rotate_half(x) * sin
 *
 * x is [B, heads, S, D]; cos and sin are [B or 1, 1, S, D] (HF's cos/sin after unsqueeze(1), whose
 * two halves repeat the same frequencies; the op does not rely on that). Output: x's shape and type.
 * ONNX RotaryEmbedding-23 with interleaved=0 expresses the same when its caches are cos[..., :D/2]
 * (see `rotaryEmbedding23` in function.ts).
 */
import { DataType } from '../../src/onnx/schema.js';
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type FusedOpSchema, type IoSpec } from '../../src/fused/types.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

export const ropeSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'RoPE',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'x', types: FLOATS, doc: '[B, heads, S, D] queries or keys' },
    { name: 'cos', types: FLOATS, doc: '[B or 1, 1, S, D]' },
    { name: 'sin', types: FLOATS, doc: '[B or 1, 1, S, D], same shape as cos' },
  ],
  outputs: [{ name: 'y', types: FLOATS, doc: '[B, heads, S, D]' }],
  attributes: [],
  check: (types, _attrs, where) => checkRotation(where, ropeSchema.inputs, types),
};

/**
 * Types of RoPE's output (and RoPEGrad's dx): `specs` names the rotated input (x, or dy) and cos,
 * sin; the result has the rotated input's shape, dims refined by cos/sin where they do not broadcast.
 */
export function checkRotation(where: string, specs: readonly IoSpec[], types: (TensorType | undefined)[]): TensorType[] {
  const [tx, tc, ts] = types;
  const xn = specs[0].name;
  const xs = expectInput(where, specs[0], tx, 4);
  const cs = expectInput(where, specs[1], tc, 4);
  const ss = expectInput(where, specs[2], ts, 4);
  const elem = sameElem(where, [xn, 'cos'], tx, tc);
  sameElem(where, ['cos', 'sin'], tc, ts);
  if (cs && ss) cs.forEach((d, i) => sameDim(where, `cos [${cs.join(',')}] and sin [${ss.join(',')}] differ at axis ${i}`, d, ss[i]));
  const d = xs?.[3];
  if (typeof d === 'number' && d % 2 !== 0) invalid(where, `${xn} [${xs!.join(',')}] has an odd last dim; rotate-half needs it even`);
  const out = xs?.slice();
  if (xs && cs) {
    if (cs[1] !== 1 && cs[1] !== null) invalid(where, `cos [${cs.join(',')}] must have 1 at axis 1 (broadcast over heads)`);
    for (const i of [0, 2, 3]) {
      if (i === 0 && cs[0] === 1) continue;
      out![i] = sameDim(where, `cos [${cs.join(',')}] does not broadcast to ${xn} [${xs.join(',')}] at axis ${i}`, xs[i], cs[i]);
    }
  }
  return [tensorType(elem, out)];
}

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferRoPE = inferRule(ropeSchema);
