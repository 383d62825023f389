/**
 * ai.ortfuse::FusedLinearCrossEntropyWithGrad (version 1): FusedLinearCrossEntropy that also
 * returns the gradients of its loss, computed chunk by chunk during the forward pass as Liger-Kernel
 * does (https://github.com/linkedin/Liger-Kernel, ops/fused_linear_cross_entropy.py):
 *
 *   loss         = FusedLinearCrossEntropy(hidden, weight, bias, labels)   (same math: schema.ts)
 *   grad_hidden  = ∂loss/∂hidden  [N, H]     = dZ · W
 *   grad_weight  = ∂loss/∂weight  [V, H]     = dZᵀ · hidden
 *   grad_bias    = ∂loss/∂bias    [V]        = Σ_rows dZ   (computed also when bias is absent)
 *   dZ_i = k_i · (softmax(z_i) − ε/V − (1 − ε)·onehot(y_i)),  k_i = [y_i ≠ ignore_index] / #valid
 *          ('mean'; 1 / max(#valid, 1)) or [y_i ≠ ignore_index] ('sum')
 *
 * The training-graph builder puts it in place of a FusedLinearCrossEntropy node whose loss is
 * differentiated; the backward then only multiplies the three gradients by the incoming dloss
 * (custom-ops/fused-linear-cross-entropy/grad.ts). Only 'mean' and 'sum' reductions: with 'none'
 * the per-row dloss is unknown during the forward pass.
 *
 * The optional last input grad_scale (float32, one element: shape [] or [1]) multiplies every
 * gradient output inside the op (k_i above becomes grad_scale·k_i; the loss is not scaled): when
 * dloss is known before the forward runs (mixed precision's loss_scale input), the gradient rule
 * passes it here instead of a Mul over the [V, H] grad_weight in the backward.
 */
import { DataType } from '../../src/onnx/schema.js';
import { formatShape, tensorType, type TensorType } from '../../src/ir/types.js';
import { expectInput, inferRule, invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, type Attrs, type FusedOpSchema } from '../../src/fused/types.js';
import { linearCrossEntropySchema } from './schema.js';

const base = linearCrossEntropySchema;
const FLOATS = base.inputs[0].types;

export const linearCrossEntropyWithGradSchema: FusedOpSchema = {
  domain: ORTFUSE_DOMAIN,
  name: 'FusedLinearCrossEntropyWithGrad',
  version: ORTFUSE_VERSION,
  inputs: [
    ...base.inputs,
    { name: 'grad_scale', types: [DataType.FLOAT], optional: true, doc: 'float32, one element ([] or [1]): multiplies grad_hidden, grad_weight and grad_bias (not the loss); absent = 1' },
  ],
  outputs: [
    { name: 'loss', types: [DataType.FLOAT], doc: 'float32 scalar, as FusedLinearCrossEntropy' },
    { name: 'grad_hidden', types: FLOATS, doc: '[N, H] ∂loss/∂hidden, element type of hidden' },
    { name: 'grad_weight', types: FLOATS, doc: '[V, H] ∂loss/∂weight' },
    { name: 'grad_bias', types: FLOATS, doc: '[V] ∂loss/∂bias (Σ_rows dZ; unused when there is no bias)' },
  ],
  attributes: base.attributes.map((a) => (a.name === 'reduction'
    ? { ...a, values: ['mean', 'sum'] as const, doc: "'mean' over non-ignored rows or 'sum' ('none' has no in-forward gradient)" }
    : a.name === 'chunk_size' ? { ...a, doc: 'cpu body: rows per chunk; 0 = max(Liger rule, 256), at most N' } : a)),
  check: checkWithGrad,
};

function checkWithGrad(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[] {
  const [loss] = base.check(types.slice(0, 4), attrs, where);
  const gs = expectInput(where, linearCrossEntropyWithGradSchema.inputs[4], types[4]);
  if (gs && !(gs.length === 0 || (gs.length === 1 && (gs[0] === 1 || typeof gs[0] !== 'number'))))
    invalid(where, `input 'grad_scale' has shape ${formatShape(gs)}, expected one element ([] or [1])`);
  if (attrs.reduction !== 'mean' && attrs.reduction !== 'sum') invalid(where, `reduction '${attrs.reduction}' has no in-forward gradient (expected 'mean' or 'sum')`);
  const [th, tw] = types;
  const elem = th?.elemType || tw?.elemType || 0;
  const v = tw?.shape?.[0] ?? null;
  return [loss, tensorType(elem, th?.shape ? th.shape.slice() : [null, null]), tensorType(elem, tw?.shape ? tw.shape.slice() : [null, null]), tensorType(elem, [v])];
}

/** Shape-inference rule for src/ir/infer (domain::op table). */
export const inferFusedLinearCrossEntropyWithGrad = inferRule(linearCrossEntropyWithGradSchema);
