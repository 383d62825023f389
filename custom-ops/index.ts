/**
 * The fused ops of domain ai.ortfuse (version 1). Each folder holds the op's schema (signature,
 * inference, validation), its portable ONNX function body, gradient rule, WebGPU kernel, a float64
 * reference and its tests, gathered in its record.ts; custom-ops/registry.ts lists the records.
 * Attach bodies to a model with `ensureFunction` (custom-ops/functions.ts).
 */
import type { FusedOp } from '../src/fused/types.js';
import { FUSED_OPS } from './registry.js';

export { FUSED_OPS, FUSED_INFER_RULES } from './registry.js';

/** The fused op called `name` (domain ai.ortfuse), if any. */
export function findFusedOp(name: string): FusedOp | undefined {
  return FUSED_OPS.find((o) => o.schema.name === name);
}

export { inferFusedLinearCrossEntropy, linearCrossEntropySchema, ligerChunkSize, GPU_BUDGET_CHUNK_ROWS, GPU_CHUNK_ROWS } from './fused-linear-cross-entropy/schema.js';
export { inferFusedLinearCrossEntropyWithGrad, linearCrossEntropyWithGradSchema } from './fused-linear-cross-entropy/with-grad-schema.js';
export { inferRMSNorm, rmsNormSchema } from './rms-norm/schema.js';
export { inferSwiGLU, swigluSchema } from './swiglu/schema.js';
export { inferRoPE, ropeSchema } from './rope/schema.js';
export { inferSwiGLUMLP, inferSwiGLUMLPKeep, swigluMlpKeepSchema, swigluMlpSchema } from './swiglu-mlp/schema.js';
export { inferRMSNormGrad, rmsNormGradSchema } from './rms-norm/grad-schema.js';
export { inferSwiGLUGrad, swigluGradSchema } from './swiglu/grad-schema.js';
export { inferRoPEGrad, ropeGradSchema } from './rope/grad-schema.js';
export { inferSwiGLUMLPGrad, inferSwiGLUMLPKeepGrad, swigluMlpGradSchema, swigluMlpKeepGradSchema } from './swiglu-mlp/grad-schema.js';
export { canUseRMSNormalization23, rmsNormalization23 } from './rms-norm/function.js';
export { canUseRotaryEmbedding23, rotaryCaches, rotaryEmbedding23 } from './rope/function.js';
export { ensureFunction, ensureFunctions } from './functions.js';
export { validateNode, ORTFUSE_DOMAIN, ORTFUSE_VERSION, type FusedOp, type FusedOpSchema, type Target } from '../src/fused/types.js';
