/**
 * ai.ortfuse::RMSNorm (version 1): root-mean-square normalisation over the last axis, computed in
 * `stash_type` (float32 by default) and cast back, exactly as HF transformers' Qwen2RMSNorm:
 *
 *   xs   = float(x)
 *   rstd = 1 / sqrt(mean(xs², axis=-1) + epsilon)
 *   y    = weight * cast_to_dtype_of_x(xs * rstd)
 *
 * Spec followed: transformers/models/qwen2/modeling_qwen2.py (Qwen2RMSNorm.forward). ONNX's
 * RMSNormalization-23 (https://onnx.ai/onnx/operators/onnx__RMSNormalization.html) with axis=-1 and
 * stash_type=1 is specified the same way (Normalized cast back to X's type, then Mul(Scale)); the
 * pass may emit it where the model's opset is >= 23 (see `rmsNormalization23` in function.ts).
 * x and weight share the element type T; y has type T and x's shape.
 */
import { DataType } from '../../src/onnx/schema.js';
import { tensorType, type TensorType } from '../../src/ir/types.js';
import {
  expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, sameElem, type Attrs, type FusedOpSchema,
} from '../../src/fused/types.js';

const FLOATS = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE] as const;

export const rmsNormSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'RMSNorm',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'x', types: FLOATS, doc: '[..., D] input' },
    { name: 'weight', types: FLOATS, doc: '[D] scale' },
  ],
  outputs: [{ name: 'y', types: FLOATS, doc: "[..., D], x's type" }],
  attributes: [
    { name: 'epsilon', type: 'FLOAT', default: 1e-6, doc: 'added to the mean square (Qwen2: rms_norm_eps)' },
    { name: 'stash_type', type: 'INT', default: DataType.FLOAT, doc: 'element type of the computation (as RMSNormalization-23): FLOAT or DOUBLE' },
  ],
  check(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
    const s = rmsNormSchema;
    if (attrs.stash_type !== DataType.FLOAT && attrs.stash_type !== DataType.DOUBLE)
      invalid(where, `stash_type=${attrs.stash_type} must be FLOAT (1) or DOUBLE (11)`);
    if (!(Number(attrs.epsilon) >= 0)) invalid(where, `epsilon=${attrs.epsilon} must be >= 0`);
    const [tx, tw] = types;
    const xs = expectInput(where, s.inputs[0], tx);
    const ws = expectInput(where, s.inputs[1], tw, 1);
    if (xs && xs.length < 1) invalid(where, `input 'x' is a scalar; RMSNorm needs rank >= 1`);
    const elem = sameElem(where, ['x', 'weight'], tx, tw);
    const d = sameDim(where, `weight [${ws?.[0] ?? '?'}] does not match the last dim of x`, xs?.[xs.length - 1], ws?.[0]);
    return [tensorType(elem, xs ? [...xs.slice(0, -1), d] : undefined)];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferRMSNorm = inferRule(rmsNormSchema);
