/**
 * ai.ortfuse::LinearGrad (version 1): the backward of Linear (schema.ts) from x, w and dy, with
 * x's leading axes flattened to rows (x₂ [M, K], dy₂ [M, N]):
 *
 *   trans_b = 1 (w [N, K]):  dx = dy·w,   dw = dy₂ᵀ·x₂ [N, K]
 *   trans_b = 0 (w [K, N]):  dx = dy·wᵀ,  dw = x₂ᵀ·dy₂ [K, N]
 *   db = Σ_rows dy₂ [N]
 *
 * Under precision 'f16' every GEMM operand is rounded to IEEE half (fp32 accumulation); db stays
 * fp32. Outputs nothing reads are not computed by the webgpu kernel (a frozen weight's dw, the db
 * of a Linear without bias).
 */
import { tensorType, type TensorType } from '../../src/ir/types.js';
import { sameShape } from '../grad-ops.js';
import { checkAttrValues, expectInput, inferRule, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameElem, type FusedOpSchema } from '../../src/fused/types.js';
import { checkLinearInputs, linearSchema } from './schema.js';

const FLOATS = linearSchema.inputs[0].types;

export const linearGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'LinearGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    linearSchema.inputs[0],
    linearSchema.inputs[1],
    { name: 'dy', types: FLOATS, doc: "[..., N] gradient of Linear's y" },
  ],
  outputs: [
    { name: 'dx', types: FLOATS, doc: '[..., K], as x' },
    { name: 'dw', types: FLOATS, doc: 'as w' },
    { name: 'db', types: FLOATS, doc: '[N], the bias gradient (read only when the forward has a bias)' },
  ],
  attributes: linearSchema.attributes,
  check(types: (TensorType | undefined)[], attrs, where: string): TensorType[] {
    checkAttrValues(where, linearGradSchema, attrs);
    const { elem, x, n } = checkLinearInputs(where, types, linearGradSchema.inputs, attrs);
    const tdy = types[2];
    const dys = expectInput(where, linearGradSchema.inputs[2], tdy);
    sameElem(where, ['dy', 'x'], tdy, types[0]);
    sameShape(where, ['dy', "x's [..., N]"], dys, x && [...x.slice(0, -1), n]);
    return [tensorType(elem, x), tensorType(elem, types[1]?.shape?.slice()), tensorType(elem, [n])];
  },
};

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferLinearGrad = inferRule(linearGradSchema);
