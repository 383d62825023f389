/// <reference types="@webgpu/types" />
/** Linear and LinearGrad as our WGSL kernels in the webgpu backend's stage plan (src/ops/kernel.ts). */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { elementCount, f32, floatInputs, kernelIo, type GpuValue, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { nodePrecision, type Precision } from '../../precision.js';
import { linearBackward, linearForward, type LinearDims } from './linear.js';

/**
 * Our GEMM whenever the op exists (`--kernels` 'linear'); the fusion itself is off by default
 * (`--fuse-linear`) until its H200 measurement.
 */
const policy: KernelPolicy = { key: 'linear', default: 'kernel' };

/** Inputs x, w and (forward) bias or (backward) dy must be float32; trans_b and precision read. */
const read = (n: Node): KernelRead => {
  const why = floatInputs(n, n.inputs.length === 3 && !n.input(2) ? 2 : n.inputs.length);
  if (why) return { why };
  const transB = n.attrInt('trans_b', 1);
  if (transB !== 0 && transB !== 1) return { why: `trans_b=${transB} is not 0 or 1` };
  return { attrs: { trans_b: transB, precision: nodePrecision(n) } };
};

/** M, K, N from x [..., K] and w, or an error naming the node. */
function dimsOf(where: string, x: GpuValue, w: GpuValue, transB: boolean): Omit<LinearDims, 'precision'> {
  const [n, k] = transB ? w.dims : [w.dims[1], w.dims[0]];
  if (w.dims.length !== 2 || x.dims.length < 2 || x.dims[x.dims.length - 1] !== k)
    fail('runtime', `${where}: x [${x.dims}] and w [${w.dims}] must be [..., K] and ${transB ? '[N, K]' : '[K, N]'} (trans_b=${+transB})`);
  return { m: elementCount(x.dims) / k, k, n, transB };
}

export const linearKernel: WebGpuKernel = {
  name: 'linear', policy, read,
  run(ctx, call, inputs) {
    const { where, drop, need } = kernelIo(call, inputs);
    const x = need(0, 'x'), w = need(1, 'w'), bias = inputs[2] && need(2, 'bias');
    const d = dimsOf(where, x, w, call.attrs.trans_b === 1);
    if (bias && (bias.dims.length !== 1 || bias.dims[0] !== d.n)) fail('runtime', `${where}: bias [${bias.dims}] must be [${d.n}] (N)`);
    const y = linearForward(ctx, { ...d, precision: call.attrs.precision as Precision, x: x.buffer, w: w.buffer, bias: bias?.buffer });
    return { outputs: [f32(y, [...x.dims.slice(0, -1), d.n])], drop };
  },
};

export const linearGradKernel: WebGpuKernel = {
  name: 'linearGrad', policy, read,
  run(ctx, call, inputs) {
    const { where, drop, need } = kernelIo(call, inputs);
    const x = need(0, 'x'), w = need(1, 'w'), dy = need(2, 'dy');
    const d = dimsOf(where, x, w, call.attrs.trans_b === 1);
    const ydims = [...x.dims.slice(0, -1), d.n];
    if (dy.dims.length !== ydims.length || dy.dims.some((v, i) => v !== ydims[i])) fail('runtime', `${where}: dy [${dy.dims}] must be [${ydims}] (x's leading axes, N)`);
    // Only the gradients something reads (a frozen weight's dw, a bias-free Linear's db are not computed).
    const want = (k: number) => call.outputs[k] != null;
    const r = linearBackward(ctx, { ...d, precision: call.attrs.precision as Precision, x: x.buffer, w: w.buffer, dy: dy.buffer, want: { dx: want(0), dw: want(1), db: want(2) } });
    const out = (b: GPUBuffer | undefined, dims: readonly number[]) => (b ? f32(b, dims) : undefined);
    return { outputs: [out(r.dx, x.dims), out(r.dw, w.dims), out(r.db, [d.n])], drop };
  },
};
