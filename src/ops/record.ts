/**
 * The record of one fused op (domain ai.ortfuse): everything each layer needs of it, in one
 * object that lives in the op's folder (custom-ops/<op>/record.ts) and is listed once in
 * custom-ops/registry.ts. The core never imports a particular op: src/ir, src/autodiff and
 * src/runtime receive the list from their callers (src/pipeline.ts, the CLI, the runtime entry
 * points) and take what they need with the helpers below.
 *
 *   schema + shape rule   → FusedOp.schema (src/fused/types.ts); shape inference: inferRules (src/fused/types.ts)
 *   portable body         → FusedOp.buildBody / bodyOptions (src/fused/functions.ts attaches it)
 *   gradient rule         → DifferentiableOp.grad / standardGrads (src/autodiff: gradTable)
 *   WebGPU kernel entry   → webgpu: policy name, attribute reader, entry (src/ops/kernel.ts;
 *                           the webgpu backend's stage split and runner)
 */
import type { DifferentiableOp } from '../autodiff/types.js';
import type { WebGpuKernel } from './kernel.js';

/** One fused op, as listed in custom-ops/registry.ts. */
export interface FusedOpRecord extends DifferentiableOp {
  /** The op's WGSL kernel for the webgpu backend, if it has one. */
  webgpu?: WebGpuKernel;
}

/** The WebGPU kernels of `ops`, by kernel name (KernelCall.op). */
export function webgpuKernels(ops: readonly FusedOpRecord[]): Map<string, WebGpuKernel> {
  return new Map(ops.flatMap((o) => (o.webgpu ? [[o.webgpu.name, o.webgpu] as const] : [])));
}
