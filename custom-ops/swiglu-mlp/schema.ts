/**
 * ai.ortfuse::SwiGLUMLP (version 1): Qwen2's whole MLP block,
 *
 *   g = x·W_gateᵀ,  u = x·W_upᵀ,  y = (silu(g) ⊙ u)·W_downᵀ,   silu(g) = g·σ(g)
 *
 * as HF transformers' Qwen2MLP (`down_proj(act_fn(gate_proj(x)) * up_proj(x))`, bias-free
 * nn.Linear layers, act_fn = SiLU; https://pytorch.org/docs/stable/generated/torch.nn.Linear.html).
 * Weights in nn.Linear's layout [out, in]: w_gate and w_up [I, H], w_down [H, I]; x [..., H] and y
 * share shape and element type. One op so the webgpu backend runs all three projections on our
 * GEMMs, and its gradient (grad.ts) keeps only x.
 *
 * ai.ortfuse::SwiGLUMLPKeep (version 1), its saving form: the same y, and also g and u [..., I],
 * which SwiGLUMLPKeepGrad reads instead of recomputing them (two GEMMs fewer in the backward, two
 * [..., I] tensors kept from the forward). The autodiff swaps SwiGLUMLP for it (grad.ts); the
 * memory planner may swap it back (src/autodiff/recompute.ts recomputeInOps).
 */
import { DataType } from '../../src/onnx/schema.js';
import { formatShape, tensorType, type Dim, type TensorType } from '../../src/ir/types.js';
import { PRECISION_ATTR } from '../precision.js';
import { checkAttrValues, expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type FusedOpSchema, type IoSpec } from '../../src/fused/types.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

/** Checks x [..., H], w_gate [I, H], w_up [I, H], w_down [H, I]; returns the shape of x (H settled) and I. */
export function checkMlpInputs(where: string, types: (TensorType | undefined)[], inputs: readonly IoSpec[]): { elem: number; x?: Dim[]; i: Dim } {
  const [tx, tg, tu, td] = types;
  const xs = expectInput(where, inputs[0], tx);
  const gs = expectInput(where, inputs[1], tg, 2);
  const us = expectInput(where, inputs[2], tu, 2);
  const ds = expectInput(where, inputs[3], td, 2);
  let elem = sameElem(where, ['x', 'w_gate'], tx, tg);
  elem = sameElem(where, ['x', 'w_up'], tx, tu) || elem;
  elem = sameElem(where, ['x', 'w_down'], tx, td) || elem;
  if (xs && xs.length < 1) invalid(where, `input 'x' has shape ${formatShape(xs)}, expected rank >= 1 ([..., H])`);
  const shapes = `x ${formatShape(xs)}, w_gate ${formatShape(gs)}, w_up ${formatShape(us)}, w_down ${formatShape(ds)}`;
  let h: Dim = xs ? xs[xs.length - 1] : null;
  h = sameDim(where, `hidden size H differs (${shapes}; expected [..., H], [I, H], [I, H], [H, I])`, h, gs?.[1]);
  h = sameDim(where, `hidden size H differs (${shapes}; expected [..., H], [I, H], [I, H], [H, I])`, h, us?.[1]);
  h = sameDim(where, `hidden size H differs (${shapes}; expected [..., H], [I, H], [I, H], [H, I])`, h, ds?.[0]);
  let i: Dim = gs?.[0] ?? null;
  i = sameDim(where, `intermediate size I differs (${shapes}; expected [..., H], [I, H], [I, H], [H, I])`, i, us?.[0]);
  i = sameDim(where, `intermediate size I differs (${shapes}; expected [..., H], [I, H], [I, H], [H, I])`, i, ds?.[1]);
  return { elem, x: xs ? [...xs.slice(0, -1), h] : undefined, i };
}

export const swigluMlpSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'SwiGLUMLP',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'x', types: FLOATS, doc: '[..., H] the MLP input (post-attention RMSNorm output)' },
    { name: 'w_gate', types: FLOATS, doc: '[I, H] gate_proj.weight' },
    { name: 'w_up', types: FLOATS, doc: '[I, H] up_proj.weight' },
    { name: 'w_down', types: FLOATS, doc: '[H, I] down_proj.weight' },
  ],
  outputs: [{ name: 'y', types: FLOATS, doc: '[..., H], as x' }],
  attributes: [PRECISION_ATTR],
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    checkAttrValues(where, swigluMlpSchema, attrs);
    const { elem, x } = checkMlpInputs(where, types, swigluMlpSchema.inputs);
    return [tensorType(elem, x)];
  },
};

export const swigluMlpKeepSchema: FusedOpSchema = {
  ...swigluMlpSchema,
  name: 'SwiGLUMLPKeep',
  outputs: [
    swigluMlpSchema.outputs[0],
    { name: 'g', types: FLOATS, doc: '[..., I] x·W_gateᵀ, kept for the backward' },
    { name: 'u', types: FLOATS, doc: '[..., I] x·W_upᵀ, kept for the backward' },
  ],
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    checkAttrValues(where, swigluMlpSchema, attrs);
    const { elem, x, i } = checkMlpInputs(where, types, swigluMlpSchema.inputs);
    const gu = () => (x ? [...x.slice(0, -1), i] : undefined);
    return [tensorType(elem, x), tensorType(elem, gu()), tensorType(elem, gu())];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferSwiGLUMLP = inferRule(swigluMlpSchema);
export const inferSwiGLUMLPKeep = inferRule(swigluMlpKeepSchema);
