/**
 * ai.ortfuse::RoPEGrad (version 1): the x-gradient of RoPE (schema.ts), i.e. the rotation by −θ.
 * With rot(x) = concat(−x₂, x₁) and its adjoint rotᵀ(z) = concat(z₂, −z₁):
 *
 *   dx = dy·cos + rotᵀ(dy·sin)
 *
 * dy is [B, heads, S, D] (RoPE's y); cos and sin as RoPE ([B or 1, 1, S, D]). dx has dy's shape and
 * type. Gradients of cos/sin (untrained in Qwen2) are not part of the op. The webgpu backend runs
 * our kernel (custom-ops/rope/webgpu) in its place.
 */
import { inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, type FusedOpSchema } from '../../src/fused/types.js';
import { checkRotation, ropeSchema } from './schema.js';

const [x, cos, sin] = ropeSchema.inputs;

export const ropeGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'RoPEGrad',
  version: ORTFUSE_VERSION,
  inputs: [{ ...x, name: 'dy', doc: "[B, heads, S, D] gradient of RoPE's y" }, cos, sin],
  outputs: [{ name: 'dx', types: x.types, doc: '[B, heads, S, D]' }],
  attributes: [],
  check: (types, _attrs, where) => checkRotation(where, ropeGradSchema.inputs, types),
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferRoPEGrad = inferRule(ropeGradSchema);
