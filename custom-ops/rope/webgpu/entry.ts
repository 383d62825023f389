/// <reference types="@webgpu/types" />
/**
 * RoPE and RoPEGrad as our WGSL kernels in the webgpu backend's stage plan (src/ops/kernel.ts).
 * They rotate in place: on the input itself when the runner says nothing reads it later, else on
 * a copy.
 */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { elementCount, f32, floatInputs, kernelIo, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { ropeBackward, ropeForward } from './rope.js';

const read = (n: Node): KernelRead => { const why = floatInputs(n, 3); return why ? { why } : { attrs: {} }; };

function kernel(back: boolean): WebGpuKernel['run'] {
  return (ctx, call, inputs, mayReuse) => {
    const { where, drop, need, sameDims } = kernelIo(call, inputs);
    const x = need(0, back ? 'dy' : 'x'), cos = need(1, 'cos'), sin = need(2, 'sin');
    sameDims(cos, sin, 'cos and sin');
    if (x.dims.length !== 4 || cos.dims.length !== 4) fail('runtime', `${where}: x [${x.dims}] and cos [${cos.dims}] must be 4-D ([B, heads, S, D] and [B or 1, 1, S, D])`);
    const [b, heads, s, d] = x.dims;
    const [bc, one, cs, cd] = cos.dims;
    if (one !== 1 || cs !== s || cd !== d || (bc !== 1 && bc !== b)) fail('runtime', `${where}: cos [${cos.dims}] does not broadcast to x [${x.dims}]`);
    const inPlace = mayReuse(0);
    let y = x.buffer;
    if (!inPlace) {
      y = ctx.buffer(`${call.op}.y`, elementCount(x.dims) * 4, 'any');
      ctx.copy(x.buffer, 0, y, 0, elementCount(x.dims) * 4);
    }
    const args = { x: y, cos: cos.buffer, sin: sin.buffer, b, heads, s, d, bc, layout: 'bhsd' as const };
    if (!back) ropeForward(ctx, args);
    else ropeBackward(ctx, args);
    return { outputs: [f32(y, x.dims)], reused: inPlace ? 0 : undefined, drop };
  };
}

/** Our kernel by default, as RMSNorm (see there). */
const policy: KernelPolicy = { key: 'rope', default: 'kernel', native: 'RotaryEmbedding-23' };

export const ropeKernel: WebGpuKernel = { name: 'rope', policy, read, run: kernel(false) };
export const ropeGradKernel: WebGpuKernel = { name: 'ropeGrad', policy, read, run: kernel(true) };
