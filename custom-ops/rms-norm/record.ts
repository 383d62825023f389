/** RMSNorm and its backward op RMSNormGrad, as listed in custom-ops/registry.ts. */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { rmsNorm } from './function.js';
import { rmsNormGrad, rmsNormalizationGrad } from './grad.js';
import { rmsNormGradOp } from './grad-function.js';
import { rmsNormGradKernel, rmsNormKernel } from './webgpu/entry.js';

export const rmsNormRecord: FusedOpRecord = {
  ...rmsNorm,
  grad: rmsNormGrad,
  webgpu: rmsNormKernel,
  recomputable: true,
  // ONNX RMSNormalization-23 over the last axis is this op (same attributes).
  standardGrads: { RMSNormalization: rmsNormalizationGrad },
};

export const rmsNormGradRecord: FusedOpRecord = { ...rmsNormGradOp, webgpu: rmsNormGradKernel };
