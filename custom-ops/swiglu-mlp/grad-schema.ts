/**
 * ai.ortfuse::SwiGLUMLPGrad (version 1): the backward of SwiGLUMLP (schema.ts) from x and the
 * weights alone — the gate and up projections are recomputed, nothing of the forward is kept:
 *
 *   g = x·W_gateᵀ,  u = x·W_upᵀ,  s = σ(g),  h = g·s·u
 *   dh = dy·W_down;  dg = dh·u·s·(1 + g·(1 − s));  du = dh·g·s
 *   dx = dg·W_gate + du·W_up
 *   dW_gate = dgᵀ·x,  dW_up = duᵀ·x,  dW_down = dyᵀ·h      (leading axes of x flattened to rows)
 *
 * dy has x's shape; each gradient has its input's type and shape. The webgpu backend runs our
 * kernel (custom-ops/swiglu-mlp/webgpu) in its place.
 *
 * ai.ortfuse::SwiGLUMLPKeepGrad (version 1), the backward of SwiGLUMLPKeep: the same math and
 * outputs, with g and u [..., I] read from its inputs (SwiGLUMLPKeep's outputs 1 and 2) instead of
 * recomputed.
 */
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { sameShape } from '../grad-ops.js';
import { checkAttrValues, expectInput, inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameElem, type FusedOpSchema } from '../../src/fused/types.js';
import { checkMlpInputs, swigluMlpSchema } from './schema.js';

const fwd = swigluMlpSchema;
const FLOATS = fwd.inputs[0].types;

export const swigluMlpGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'SwiGLUMLPGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    ...fwd.inputs,
    { name: 'dy', types: FLOATS, doc: "[..., H] gradient of SwiGLUMLP's y" },
  ],
  outputs: [
    { name: 'dx', types: FLOATS, doc: '[..., H]' },
    { name: 'dw_gate', types: FLOATS, doc: '[I, H]' },
    { name: 'dw_up', types: FLOATS, doc: '[I, H]' },
    { name: 'dw_down', types: FLOATS, doc: '[H, I]' },
  ],
  attributes: fwd.attributes,
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    checkAttrValues(where, fwd, attrs);
    const { elem, x } = checkMlpInputs(where, types, fwd.inputs);
    const tdy = types[4];
    const dys = expectInput(where, swigluMlpGradSchema.inputs[4], tdy);
    sameElem(where, ['dy', 'x'], tdy, types[0]);
    const dx = sameShape(where, ['dy', 'x'], dys, x);
    const w = (k: number) => types[k]?.shape?.slice();
    return [tensorType(elem, dx), tensorType(elem, w(1)), tensorType(elem, w(2)), tensorType(elem, w(3))];
  },
};

const gu = (name: string, doc: string) => ({ name, types: FLOATS, doc: `[..., I] ${doc}, from the forward` });

export const swigluMlpKeepGradSchema: FusedOpSchema = {
  ...swigluMlpGradSchema,
  name: 'SwiGLUMLPKeepGrad',
  inputs: [...swigluMlpGradSchema.inputs, gu('g', 'x·W_gateᵀ'), gu('u', 'x·W_upᵀ')],
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    const out = swigluMlpGradSchema.check(types, attrs, where);
    const { i } = checkMlpInputs(where, types, fwd.inputs);
    const gi = out[0].shape && [...out[0].shape.slice(0, -1), i];
    for (const k of [5, 6]) {
      const spec = swigluMlpKeepGradSchema.inputs[k];
      const got = expectInput(where, spec, types[k]);
      sameElem(where, [spec.name, 'x'], types[k], types[0]);
      sameShape(where, [spec.name, "x's [..., I]"], got, gi);
    }
    return out;
  },
};

/** Shape-inference rules for src/ir/infer (domain::op table). */
export const inferSwiGLUMLPGrad = inferRule(swigluMlpGradSchema);
export const inferSwiGLUMLPKeepGrad = inferRule(swigluMlpKeepGradSchema);
