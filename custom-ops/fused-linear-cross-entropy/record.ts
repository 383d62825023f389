/**
 * FusedLinearCrossEntropy and FusedLinearCrossEntropyWithGrad (its in-forward-gradient form, which
 * autodiff substitutes as Liger-Kernel does), as listed in custom-ops/registry.ts.
 */
import type { FusedOpRecord } from '../../src/ops/record.js';
import { fusedLinearCrossEntropy } from './function.js';
import { linearCrossEntropyGrad, linearCrossEntropyWithGradGrad } from './grad.js';
import { fusedLinearCrossEntropyWithGrad } from './with-grad.js';
import { flceKernel } from './webgpu/entry.js';

export const linearCrossEntropyRecord: FusedOpRecord = { ...fusedLinearCrossEntropy, grad: linearCrossEntropyGrad, webgpu: flceKernel };

export const linearCrossEntropyWithGradRecord: FusedOpRecord = { ...fusedLinearCrossEntropyWithGrad, grad: linearCrossEntropyWithGradGrad, webgpu: flceKernel };
