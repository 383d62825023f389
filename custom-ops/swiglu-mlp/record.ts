/** SwiGLUMLP and its backward op SwiGLUMLPGrad, as listed in custom-ops/registry.ts. */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { swigluMlp } from './function.js';
import { swigluMlpGrad } from './grad.js';
import { swigluMlpGradOp } from './grad-function.js';
import { swigluMlpGradKernel, swigluMlpKernel } from './webgpu/entry.js';

/** Not recomputable: its output costs three GEMMs (and nothing saves it: the residual Add's gradient does not read it). */
export const swigluMlpRecord: FusedOpRecord = { ...swigluMlp, grad: swigluMlpGrad, webgpu: swigluMlpKernel };

export const swigluMlpGradRecord: FusedOpRecord = { ...swigluMlpGradOp, webgpu: swigluMlpGradKernel };
