/// <reference types="@webgpu/types" />
/** RMSNorm and RMSNormGrad as our WGSL kernels in the webgpu backend's stage plan (src/ops/kernel.ts). */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { DataType } from '../../../src/onnx/schema.js';
import { elementCount, f32, floatInputs, kernelIo, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { rmsNormBackward, rmsNormForward } from './rms-norm.js';

function read(count: number) {
  return (n: Node): KernelRead => {
    const why = floatInputs(n, count);
    if (why) return { why };
    if (n.attrInt('stash_type', DataType.FLOAT) !== DataType.FLOAT) return { why: 'stash_type is not FLOAT' };
    return { attrs: { epsilon: n.attrFloat('epsilon', 1e-6) } };
  };
}

function kernel(back: boolean): WebGpuKernel['run'] {
  return (ctx, call, inputs) => {
    const { where, drop, need, sameDims, keep } = kernelIo(call, inputs);
    const x = need(back ? 1 : 0, 'x'), w = need(back ? 2 : 1, 'weight');
    const d = x.dims[x.dims.length - 1];
    if (!x.dims.length || w.dims.length !== 1 || w.dims[0] !== d) fail('runtime', `${where}: weight [${w.dims}] does not match the last dim of x [${x.dims}]`);
    const rows = elementCount(x.dims) / d, eps = Number(call.attrs.epsilon);
    if (!back) {
      const rstd = ctx.temp('rmsnorm.rstd', rows * 4, 'any');
      const { y } = rmsNormForward(ctx, { x: x.buffer, weight: w.buffer, rows, d, eps, rstd });
      return { outputs: [f32(y, x.dims)], drop };
    }
    const dy = need(0, 'dy');
    sameDims(dy, x, 'dy and x');
    const r = rmsNormBackward(ctx, { x: x.buffer, weight: w.buffer, dy: dy.buffer, rows, d, eps });
    return { outputs: [keep(0, f32(r.dx, x.dims)), keep(1, f32(r.dWeight, w.dims))], drop };
  };
}

/**
 * Our kernel by default: with the glue kernels (src/runtime/webgpu/glue.ts) the ops around it run
 * as ours too, so it no longer cuts ORT segments (before the glue kernels it added 48-146 segment
 * runs per 0.5B step: bench/results/train-step-webgpu-h100.md; now the whole step is 2 ORT runs:
 * bench/results/step-speed-h200.md, session 9).
 */
const policy: KernelPolicy = { key: 'rmsNorm', default: 'kernel', native: 'RMSNormalization-23' };

export const rmsNormKernel: WebGpuKernel = { name: 'rmsNorm', policy, read: read(2), run: kernel(false) };
export const rmsNormGradKernel: WebGpuKernel = { name: 'rmsNormGrad', policy, read: read(3), run: kernel(true) };
