/**
 * ai.ortfuse::RMSNormGrad (version 1): the backward of RMSNorm (schema.ts), with rstd recomputed
 * from x (no [..., D] forward intermediate is kept):
 *
 *   xs = float(x);  r = 1 / sqrt(mean(xs², axis=-1) + epsilon);  n = xs·r
 *   dn      = float(dy · weight)
 *   dx      = cast_to_dtype_of_x(r · (dn − n · mean(dn · n, axis=-1)))
 *   dweight = Σ_{all leading axes} dy · cast_to_dtype_of_x(n)
 *
 * `epsilon` and `stash_type` as RMSNorm. dy has x's shape; dx has x's type and shape, dweight
 * weight's ([D]). The webgpu backend runs our kernel (custom-ops/rms-norm/webgpu) in its place.
 */
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { expectInput, inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameElem, type Attrs, type FusedOpSchema } from '../../src/fused/types.js';
import { rmsNormSchema } from './schema.js';
import { sameShape } from '../grad-ops.js';

const fwd = rmsNormSchema;
const FLOATS = fwd.inputs[0].types;

export const rmsNormGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'RMSNormGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    { name: 'dy', types: FLOATS, doc: "[..., D] gradient of RMSNorm's y" },
    ...fwd.inputs,
  ],
  outputs: [
    { name: 'dx', types: FLOATS, doc: "[..., D], x's type" },
    { name: 'dweight', types: FLOATS, doc: '[D], summed over the leading axes of x' },
  ],
  attributes: fwd.attributes,
  check(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
    const [tdy, tx, tw] = types;
    const dys = expectInput(where, rmsNormGradSchema.inputs[0], tdy);
    const [y] = fwd.check([tx, tw], attrs, where);
    const elem = sameElem(where, ['dy', 'x'], tdy, tx);
    const shape = sameShape(where, ['dy', 'x'], dys, y.shape);
    return [tensorType(elem, shape), tensorType(elem, tw?.shape?.slice() ?? [shape ? shape[shape.length - 1] : null])];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferRMSNormGrad = inferRule(rmsNormGradSchema);
