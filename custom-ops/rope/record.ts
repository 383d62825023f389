/** RoPE and its backward op RoPEGrad, as listed in custom-ops/registry.ts. */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { rope } from './function.js';
import { ropeGrad } from './grad.js';
import { ropeGradOp } from './grad-function.js';
import { ropeGradKernel, ropeKernel } from './webgpu/entry.js';

export const ropeRecord: FusedOpRecord = { ...rope, grad: ropeGrad, webgpu: ropeKernel, recomputable: true };

export const ropeGradRecord: FusedOpRecord = { ...ropeGradOp, webgpu: ropeGradKernel };
