/**
 * ai.ortfuse::SwiGLUGrad (version 1): the backward of SwiGLU (schema.ts), y = g·σ(g)·u, with the
 * sigmoid recomputed from the saved pre-activations (as Liger-Kernel):
 *
 *   s = σ(gate);  dgate = dy·up·s·(1 + gate·(1 − s));  dup = dy·gate·s
 *
 * dy, gate and up share shape and element type; dgate and dup have the same. The webgpu backend
 * runs our kernel (custom-ops/swiglu/webgpu) in its place.
 */
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { sameShape } from '../grad-ops.js';
import { expectInput, inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameElem, type FusedOpSchema } from '../../src/fused/types.js';
import { swigluSchema } from './schema.js';

const fwd = swigluSchema;
const FLOATS = fwd.inputs[0].types;

export const swigluGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'SwiGLUGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'dy', types: FLOATS, doc: "[..., I] gradient of SwiGLU's y" },
    ...fwd.inputs,
  ],
  outputs: [
    { name: 'dgate', types: FLOATS, doc: '[..., I]' },
    { name: 'dup', types: FLOATS, doc: '[..., I]' },
  ],
  attributes: [],
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    const [tdy, tg, tu] = types;
    const dys = expectInput(where, swigluGradSchema.inputs[0], tdy);
    const [y] = fwd.check([tg, tu], attrs, where);
    const elem = sameElem(where, ['dy', 'gate'], tdy, tg);
    const shape = sameShape(where, ['dy', 'gate'], dys, y.shape);
    return [tensorType(elem, shape), tensorType(elem, shape?.slice())];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferSwiGLUGrad = inferRule(swigluGradSchema);
