/// <reference types="@webgpu/types" />
/** CausalAttention and CausalAttentionGrad as our WGSL kernels (batched GEMMs, ./attention.ts) in the webgpu backend's stage plan (src/ops/kernel.ts). */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { f32, floatInputs, kernelIo, type GpuValue, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { nodePrecision, type Precision } from '../../precision.js';
import { causalAttentionBackward, causalAttentionForward, type AttnDims } from './attention.js';

/**
 * Our kernels by default (the attention fusion is on by default on webgpu: defaultFuseAttention of
 * src/runtime/session.ts): on the batched GEMMs, with the glue kernels the 0.5B step runs in 2 ORT
 * segments (bench/results/step-speed-h200.md, session 9).
 */
const policy: KernelPolicy = { key: 'attn', default: 'kernel' };

const read = (count: number) => (n: Node): KernelRead => {
  const why = floatInputs(n, count);
  return why ? { why } : { attrs: { scale: n.attrFloat('scale', 1), precision: nodePrecision(n) } };
};

/** B, Hq, Hkv, T, D from q [B, Hq, T, D] and k, v [B, Hkv, T, D], or an error naming the node. */
function dimsOf(where: string, q: GpuValue, k: GpuValue, v: GpuValue, scale: number): AttnDims {
  const [b, hq, t, d] = q.dims;
  const hkv = k.dims[1];
  const same = (x: GpuValue) => x.dims.length === 4 && x.dims[0] === b && x.dims[1] === hkv && x.dims[2] === t && x.dims[3] === d;
  if (q.dims.length !== 4 || !same(k) || !same(v) || !(hkv > 0) || hq % hkv !== 0)
    fail('runtime', `${where}: q [${q.dims}], k [${k.dims}], v [${v.dims}] must be [B, Hq, T, D], [B, Hkv, T, D], [B, Hkv, T, D] with Hkv dividing Hq`);
  return { b, hq, hkv, t, d, scale };
}

export const causalAttentionKernel: WebGpuKernel = {
  name: 'causalAttention', policy, read: read(3),
  run(ctx, call, inputs) {
    const { where, drop, need, keep } = kernelIo(call, inputs);
    const q = need(0, 'q'), k = need(1, 'k'), v = need(2, 'v');
    const d = dimsOf(where, q, k, v, Number(call.attrs.scale));
    const r = causalAttentionForward(ctx, { ...d, precision: call.attrs.precision as Precision, q: q.buffer, k: k.buffer, v: v.buffer });
    return { outputs: [keep(0, f32(r.o, q.dims)), keep(1, f32(r.lse, q.dims.slice(0, 3)))], drop };
  },
};

export const causalAttentionGradKernel: WebGpuKernel = {
  name: 'causalAttentionGrad', policy, read: read(6),
  run(ctx, call, inputs) {
    const { where, drop, need, keep, sameDims } = kernelIo(call, inputs);
    const q = need(0, 'q'), k = need(1, 'k'), v = need(2, 'v'), o = need(3, 'o'), lse = need(4, 'lse'), dout = need(5, 'do');
    sameDims(o, q, 'o and q');
    sameDims(dout, q, 'do and q');
    const d = dimsOf(where, q, k, v, Number(call.attrs.scale));
    if (lse.dims.length !== 3 || lse.dims.some((x, i) => x !== q.dims[i])) fail('runtime', `${where}: lse [${lse.dims}] must be [B, Hq, T] of q [${q.dims}]`);
    const r = causalAttentionBackward(ctx, { ...d, precision: call.attrs.precision as Precision, q: q.buffer, k: k.buffer, v: v.buffer, o: o.buffer, lse: lse.buffer, dout: dout.buffer });
    return { outputs: [keep(0, f32(r.dq, q.dims)), keep(1, f32(r.dk, k.dims)), keep(2, f32(r.dv, v.dims))], drop };
  },
};
