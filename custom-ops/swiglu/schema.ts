/**
 * ai.ortfuse::SwiGLU (version 1): the gated activation of Qwen2's MLP,
 *
 *   y = silu(gate) * up = gate * sigmoid(gate) * up
 *
 * as HF transformers' Qwen2MLP (`act_fn(gate_proj(x)) * up_proj(x)`, act_fn = SiLU;
 * https://pytorch.org/docs/stable/generated/torch.nn.SiLU.html). gate and up share shape and
 * element type (no broadcasting); y has the same.
 */
import { DataType } from '../../src/onnx/schema.js';
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type FusedOpSchema } from '../../src/fused/types.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

export const swigluSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'SwiGLU',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'gate', types: FLOATS, doc: '[..., I] gate_proj output' },
    { name: 'up', types: FLOATS, doc: '[..., I] up_proj output, same shape as gate' },
  ],
  outputs: [{ name: 'y', types: FLOATS, doc: '[..., I]' }],
  attributes: [],
  check(types: (TensorType | undefined)[], _attrs, where: string): TensorType[] {
    const [tg, tu] = types;
    const gs = expectInput(where, swigluSchema.inputs[0], tg);
    const us = expectInput(where, swigluSchema.inputs[1], tu);
    const elem = sameElem(where, ['gate', 'up'], tg, tu);
    if (gs && us && gs.length !== us.length)
      invalid(where, `gate [${gs.join(',')}] and up [${us.join(',')}] must have the same shape`);
    const shape = gs && us ? gs.map((d, i) => sameDim(where, `gate [${gs.join(',')}] and up [${us.join(',')}] differ at axis ${i}`, d, us[i])) : (gs ?? us);
    return [tensorType(elem, shape?.slice())];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferSwiGLU = inferRule(swigluSchema);
