/// <reference types="@webgpu/types" />
/** SwiGLUMLP, SwiGLUMLPKeep and their backward ops as our WGSL kernels in the webgpu backend's stage plan (src/ops/kernel.ts). */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { elementCount, f32, floatInputs, kernelIo, type GpuValue, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { nodePrecision, type Precision } from '../../precision.js';
import { swigluMlpBackward, swigluMlpForward, swigluMlpForwardKeep, type MlpDims } from './mlp.js';

/**
 * ORT runs the body unless asked (`--kernels default,mlp`): the MLP fusion itself is off by default
 * (`--fuse-mlp`) until its H200 measurement, and so is this kernel.
 */
const policy: KernelPolicy = { key: 'mlp', default: 'kernel' };

const read = (count: number) => (n: Node): KernelRead => { const why = floatInputs(n, count); return why ? { why } : { attrs: { precision: nodePrecision(n) } }; };

/** The node's precision, as `read` recorded it. */
const precisionOf = (attrs: Record<string, unknown>): Precision => (attrs.precision === 'f16' ? 'f16' : 'fp32');

/** M, H, I from x [..., H], w_gate [I, H], w_up [I, H], w_down [H, I], or an error naming the node. */
function dimsOf(where: string, x: GpuValue, wGate: GpuValue, wUp: GpuValue, wDown: GpuValue): MlpDims {
  const [i, h] = wGate.dims;
  const shapes = `x [${x.dims}], w_gate [${wGate.dims}], w_up [${wUp.dims}], w_down [${wDown.dims}]`;
  const ok = wGate.dims.length === 2 && x.dims.length >= 1 && x.dims[x.dims.length - 1] === h &&
    wUp.dims.length === 2 && wUp.dims[0] === i && wUp.dims[1] === h && wDown.dims.length === 2 && wDown.dims[0] === h && wDown.dims[1] === i;
  if (!ok) fail('runtime', `${where}: ${shapes} must be [..., H], [I, H], [I, H], [H, I]`);
  return { m: elementCount(x.dims) / h, h, i };
}

export const swigluMlpKernel: WebGpuKernel = {
  name: 'swigluMlp', policy, read: read(4),
  run(ctx, call, inputs) {
    const { where, drop, need } = kernelIo(call, inputs);
    const x = need(0, 'x'), wGate = need(1, 'w_gate'), wUp = need(2, 'w_up'), wDown = need(3, 'w_down');
    const d = dimsOf(where, x, wGate, wUp, wDown);
    const y = swigluMlpForward(ctx, { ...d, x: x.buffer, wGate: wGate.buffer, wUp: wUp.buffer, wDown: wDown.buffer, precision: precisionOf(call.attrs) });
    return { outputs: [f32(y, x.dims)], drop };
  },
};

export const swigluMlpKeepKernel: WebGpuKernel = {
  name: 'swigluMlpKeep', policy, read: read(4),
  run(ctx, call, inputs) {
    const { where, drop, need, keep } = kernelIo(call, inputs);
    const x = need(0, 'x'), wGate = need(1, 'w_gate'), wUp = need(2, 'w_up'), wDown = need(3, 'w_down');
    const d = dimsOf(where, x, wGate, wUp, wDown);
    const r = swigluMlpForwardKeep(ctx, { ...d, x: x.buffer, wGate: wGate.buffer, wUp: wUp.buffer, wDown: wDown.buffer, precision: precisionOf(call.attrs) });
    const gu = [...x.dims.slice(0, -1), d.i];
    return { outputs: [f32(r.y, x.dims), keep(1, f32(r.g, gu)), keep(2, f32(r.u, gu))], drop };
  },
};

/** SwiGLUMLPGrad, or SwiGLUMLPKeepGrad (`kept`: its inputs 5 and 6 are g and u). */
const gradKernel = (name: string, kept: boolean): WebGpuKernel => ({
  name, policy, read: read(kept ? 7 : 5),
  run(ctx, call, inputs, mayReuse) {
    const { where, drop, need, sameDims } = kernelIo(call, inputs);
    const x = need(0, 'x'), wGate = need(1, 'w_gate'), wUp = need(2, 'w_up'), wDown = need(3, 'w_down'), dy = need(4, 'dy');
    sameDims(dy, x, 'dy and x');
    const d = dimsOf(where, x, wGate, wUp, wDown);
    let g: GpuValue | undefined, u: GpuValue | undefined;
    if (kept) {
      g = need(5, 'g');
      u = need(6, 'u');
      const gu = [...x.dims.slice(0, -1), d.i];
      if (g.dims.length !== gu.length || g.dims.some((v, k) => v !== gu[k])) fail('runtime', `${where}: g [${g.dims}] must be [${gu}] (x's leading axes, I)`);
      sameDims(u, g, 'u and g');
    }
    // Only the gradients something reads (a frozen weight's is not computed at all).
    const want = (k: number) => call.outputs[k] != null;
    const r = swigluMlpBackward(ctx, {
      ...d, x: x.buffer, wGate: wGate.buffer, wUp: wUp.buffer, wDown: wDown.buffer, dy: dy.buffer, precision: precisionOf(call.attrs),
      want: { dx: want(0), dwGate: want(1), dwUp: want(2), dwDown: want(3) },
      kept: g && u && { g: g.buffer, u: u.buffer, overwrite: mayReuse(5) && mayReuse(6) },
    });
    const out = (b: GPUBuffer | undefined, dims: readonly number[]) => (b ? f32(b, dims) : undefined);
    return { outputs: [out(r.dx, x.dims), out(r.dwGate, wGate.dims), out(r.dwUp, wUp.dims), out(r.dwDown, wDown.dims)], drop };
  },
});

export const swigluMlpGradKernel = gradKernel('swigluMlpGrad', false);

export const swigluMlpKeepGradKernel = gradKernel('swigluMlpKeepGrad', true);
