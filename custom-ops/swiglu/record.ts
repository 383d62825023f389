/** SwiGLU and its backward op SwiGLUGrad, as listed in custom-ops/registry.ts. */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { swiglu } from './function.js';
import { swigluGrad } from './grad.js';
import { swigluGradOp } from './grad-function.js';
import { swigluGradKernel, swigluKernel } from './webgpu/entry.js';

export const swigluRecord: FusedOpRecord = { ...swiglu, grad: swigluGrad, webgpu: swigluKernel, recomputable: true };

export const swigluGradRecord: FusedOpRecord = { ...swigluGradOp, webgpu: swigluGradKernel };
