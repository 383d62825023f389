/// <reference types="@webgpu/types" />
/** SwiGLU and SwiGLUGrad as our WGSL kernels in the webgpu backend's stage plan (src/ops/kernel.ts). */
import type { Node } from '../../../src/ir/graph.js';
import { elementCount, f32, floatInputs, kernelIo, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { swigluBackward, swigluForward } from './swiglu.js';

/**
 * Our kernel by default: with FLCE's, the 0.5B step at 8×512 drops from 27 to 18 GiB (about
 * Liger's memory) for ~10% of FLCE-only's speed; `{ swiglu: 'ort' }` is the speed-first choice
 * (bench/results/train-step-webgpu-h100.md).
 */
const policy: KernelPolicy = { key: 'swiglu', default: 'kernel' };

const read = (count: number) => (n: Node): KernelRead => { const why = floatInputs(n, count); return why ? { why } : { attrs: {} }; };

export const swigluKernel: WebGpuKernel = {
  name: 'swiglu', policy, read: read(2),
  run(ctx, call, inputs) {
    const { drop, need, sameDims } = kernelIo(call, inputs);
    const gate = need(0, 'gate'), up = need(1, 'up');
    sameDims(gate, up, 'gate and up');
    return { outputs: [f32(swigluForward(ctx, { gate: gate.buffer, up: up.buffer, n: elementCount(gate.dims) }), gate.dims)], drop };
  },
};

export const swigluGradKernel: WebGpuKernel = {
  name: 'swigluGrad', policy, read: read(3),
  run(ctx, call, inputs) {
    const { drop, need, sameDims, keep } = kernelIo(call, inputs);
    const dy = need(0, 'dy'), gate = need(1, 'gate'), up = need(2, 'up');
    sameDims(gate, up, 'gate and up');
    sameDims(dy, gate, 'dy and gate');
    const r = swigluBackward(ctx, { gate: gate.buffer, up: up.buffer, dy: dy.buffer, n: elementCount(gate.dims) });
    return { outputs: [keep(0, f32(r.dGate, gate.dims)), keep(1, f32(r.dUp, up.dims))], drop };
  },
};
