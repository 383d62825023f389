/// <reference types="@webgpu/types" />
/**
 * Runs a kernel node of the stage plan (./stage-split.ts) through the fused op's entry
 * (custom-ops/<op>/webgpu/entry.ts, reached through the records the caller passes): dims come from
 * the runtime tensors, outputs are new 16-byte padded STORAGE buffers (ours), except where an
 * entry works in place (RoPE). Commands are only recorded here; the runner submits each kernel group.
 */
import { fail } from '../../errors.js';
import type { KernelCall, GpuValue, KernelOutputs, WebGpuKernel } from '../../ops/kernel.js';
import type { GpuContext } from '../../webgpu/context.js';

export type { GpuValue, KernelOutputs } from '../../ops/kernel.js';

/**
 * Record `call` on `ctx` with its kernel from `kernels` (by name: webgpuKernels of src/ops/record.ts).
 * `inputs` by the call's input order; `mayReuse(i)`: input i is read by nothing after this call.
 */
export function runKernel(
  kernels: ReadonlyMap<string, WebGpuKernel>, ctx: GpuContext, call: KernelCall, inputs: (GpuValue | undefined)[], mayReuse: (i: number) => boolean,
): KernelOutputs {
  const kernel = kernels.get(call.op) ?? fail('unsupported', `${call.node} (our ${call.op} kernel): no kernel for '${call.op}'`);
  return kernel.run(ctx, call, inputs, mayReuse);
}
