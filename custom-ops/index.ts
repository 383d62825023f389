/**
 * The fused ops of domain ai.ortfuse (version 1), in one explicit list. Each folder holds the op's
 * schema (signature, inference, validation), its portable ONNX function body, a float64 reference
 * and its tests. Attach bodies to a model with `ensureFunction` (custom-ops/functions.ts).
 */
import { fusedLinearCrossEntropy } from './fused-linear-cross-entropy/function.js';
import { fusedLinearCrossEntropyWithGrad } from './fused-linear-cross-entropy/with-grad.js';
import { rmsNorm } from './rms-norm/function.js';
import { rmsNormGradOp } from './rms-norm/grad-function.js';
import { rope } from './rope/function.js';
import { ropeGradOp } from './rope/grad-function.js';
import { swiglu } from './swiglu/function.js';
import { swigluGradOp } from './swiglu/grad-function.js';
import type { FusedOp } from './types.js';

/** Forward ops, then the backward ops the gradient rules emit (RMSNormGrad, SwiGLUGrad, RoPEGrad). */
export const fusedOps: readonly FusedOp[] = [
  fusedLinearCrossEntropy, fusedLinearCrossEntropyWithGrad, rmsNorm, swiglu, rope, rmsNormGradOp, swigluGradOp, ropeGradOp,
];

/** The fused op called `name` (domain ai.ortfuse), if any. */
export function findFusedOp(name: string): FusedOp | undefined {
  return fusedOps.find((o) => o.schema.name === name);
}

export { inferFusedLinearCrossEntropy, linearCrossEntropySchema, ligerChunkSize } from './fused-linear-cross-entropy/schema.js';
export { inferFusedLinearCrossEntropyWithGrad, linearCrossEntropyWithGradSchema } from './fused-linear-cross-entropy/with-grad-schema.js';
export { inferRMSNorm, rmsNormSchema } from './rms-norm/schema.js';
export { inferSwiGLU, swigluSchema } from './swiglu/schema.js';
export { inferRoPE, ropeSchema } from './rope/schema.js';
export { inferRMSNormGrad, rmsNormGradSchema } from './rms-norm/grad-schema.js';
export { inferSwiGLUGrad, swigluGradSchema } from './swiglu/grad-schema.js';
export { inferRoPEGrad, ropeGradSchema } from './rope/grad-schema.js';
export { canUseRMSNormalization23, rmsNormalization23 } from './rms-norm/function.js';
export { canUseRotaryEmbedding23, rotaryCaches, rotaryEmbedding23 } from './rope/function.js';
export { ensureFunction, ensureFunctions } from './functions.js';
export { validateNode, ORTFUSE_DOMAIN, ORTFUSE_VERSION, type FusedOp, type FusedOpSchema, type Target } from './types.js';
