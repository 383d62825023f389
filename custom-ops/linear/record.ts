/** Linear and LinearGrad, as listed in custom-ops/registry.ts. */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { linear, linearGradOp } from './function.js';
import { linearGrad } from './grad.js';
import { linearGradKernel, linearKernel } from './webgpu/entry.js';

/** Not recomputable: its output costs a GEMM. No workspace: the kernels write their outputs only (db's column sums included). */
export const linearRecord: FusedOpRecord = { ...linear, grad: linearGrad, webgpu: linearKernel };

export const linearGradRecord: FusedOpRecord = { ...linearGradOp, webgpu: linearGradKernel };
