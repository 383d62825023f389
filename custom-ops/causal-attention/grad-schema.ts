/**
 * ai.ortfuse::CausalAttentionGrad (version 1): the backward of CausalAttention (schema.ts) from its
 * inputs, its outputs o and lse, and do — the probabilities are recomputed from q, k and lse
 * (flash-attention style), nothing [T, T] is kept from the forward:
 *
 *   p[t, u]  = exp(s[t, u] − lse[t]) for u ≤ t, else 0      (s as in schema.ts)
 *   δ[t]     = Σ_d do[t, d]·o[t, d]
 *   ds[t, u] = p[t, u]·(do[t]·v[u] − δ[t])
 *   dq[t]    = scale · Σ_u ds[t, u]·k[u]
 *   dk[u]    = scale · Σ_{h in the group} Σ_t ds[t, u]·q[t],   dv[u] = Σ_{h in the group} Σ_t p[t, u]·do[t]
 *
 * (for GQA each kv head's gradient sums over the Hq/Hkv query heads that read it). Each gradient
 * has its input's shape and type; do has o's. The webgpu backend runs our kernel in its place.
 */
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { sameShape } from '../grad-ops.js';
import { expectInput, inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameElem, type Attrs, type FusedOpSchema } from '../../src/fused/types.js';
import { causalAttentionSchema, checkAttentionInputs, FLOATS } from './schema.js';

const fwd = causalAttentionSchema;

export const causalAttentionGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'CausalAttentionGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    ...fwd.inputs,
    { name: 'o', types: FLOATS, doc: "[B, Hq, T, D] CausalAttention's o" },
    { name: 'lse', types: FLOATS, doc: "[B, Hq, T] CausalAttention's lse" },
    { name: 'do', types: FLOATS, doc: "[B, Hq, T, D] gradient of o" },
  ],
  outputs: [
    { name: 'dq', types: FLOATS, doc: '[B, Hq, T, D]' },
    { name: 'dk', types: FLOATS, doc: '[B, Hkv, T, D]' },
    { name: 'dv', types: FLOATS, doc: '[B, Hkv, T, D]' },
  ],
  attributes: fwd.attributes,
  check(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
    const s = causalAttentionGradSchema;
    const { elem, q, kv, lse } = checkAttentionInputs(where, types, s.inputs, attrs);
    const os = expectInput(where, s.inputs[3], types[3], 4);
    const ls = expectInput(where, s.inputs[4], types[4], 3);
    const ds = expectInput(where, s.inputs[5], types[5], 4);
    for (const [k, name] of [[3, 'o'], [4, 'lse'], [5, 'do']] as const) sameElem(where, [name, 'q'], types[k], types[0]);
    sameShape(where, ['o', 'q'], os, q);
    sameShape(where, ['lse', '[B, Hq, T] of q'], ls, lse);
    const dq = sameShape(where, ['do', 'q'], ds, q);
    return [tensorType(elem, dq), tensorType(elem, kv?.slice()), tensorType(elem, kv?.slice())];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferCausalAttentionGrad = inferRule(causalAttentionGradSchema);
