/// <reference types="@webgpu/types" />
/**
 * What the webgpu backend needs of a fused op that has a WGSL kernel: which `--kernels` policy
 * hands it to the kernel, whether a node can run there (and its attributes), and the entry that
 * records the kernel's commands for one node of the stage plan (src/runtime/webgpu/stage-split.ts).
 * Each op's entry lives in custom-ops/<op>/webgpu/entry.ts and reaches the runtime through the
 * op's record (src/ops/record.ts).
 */
import { fail } from '../errors.js';
import type { Node } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import type { GpuContext } from '../webgpu/context.js';

/** One node run by our kernels: value names by the op's input/output order (null = absent/unused). */
export interface KernelCall {
  /** The kernel's name ({@link WebGpuKernel.name}). */
  op: string;
  /** The node's label, for errors. */
  node: string;
  inputs: (string | null)[];
  outputs: (string | null)[];
  attrs: Record<string, number | string>;
}

/** A value on the GPU: its buffer, dims and element type (ORT's names: 'float32', 'int64'). */
export interface GpuValue {
  buffer: GPUBuffer;
  dims: readonly number[];
  type: string;
}

export interface KernelOutputs {
  /** By the call's output order; undefined where the call has no output. */
  outputs: (GpuValue | undefined)[];
  /** Index of the input whose buffer became output 0 (in-place RoPE), if any. */
  reused?: number;
  /**
   * Index of the input whose buffer output 0 views (a Reshape: same buffer, other dims; the input
   * stays valid too, the buffer goes back when both are released), if any.
   */
  viewOf?: number;
  /** Our buffers nobody reads (kernel results the call does not keep): handed back right after the call is recorded. */
  drop: GPUBuffer[];
}

/** Why a node cannot run as the kernel, or the attributes the kernel reads. */
export type KernelRead = { why: string } | { attrs: Record<string, number | string> };

/** A `--kernels` policy (src/runtime/webgpu/policy.ts): it hands an op's kernels (forward and backward) to us. */
export interface KernelPolicy {
  /** The key in OpPolicy ('flce', 'rmsNorm'); lowercased, the word of `--kernels`. */
  key: string;
  /** The choice when none is given (measured: bench/results/train-step-webgpu-h100.md). */
  default: 'kernel' | 'ort';
  /** The ONNX op the forward op can also run as ('native', passes/lower-to-onnx-23.ts), e.g. 'RMSNormalization-23'. */
  native?: string;
}

/** The WebGPU kernel of one fused op (forward or backward). */
export interface WebGpuKernel {
  /** The kernel's name in a stage plan (KernelCall.op), e.g. 'rmsNormGrad'. */
  name: string;
  /** The policy that hands the op to this kernel (shared by an op's forward and backward kernels). */
  policy: KernelPolicy;
  /** Whether `n` can run as this kernel, and its attributes. */
  read(n: Node): KernelRead;
  /**
   * Other nodes of `n`'s graph that the same kernel call computes (their outputs follow n's in the
   * call's outputs), e.g. linear-CE's backward Loop; throws, naming `n`, when the graph cannot be
   * cut so. Default: none.
   */
  absorbs?(n: Node): Node[];
  /**
   * Record the kernel's commands for `call` on `ctx` (the runner submits each kernel group).
   * `inputs` by the call's input order; `mayReuse(i)`: input i is read by nothing after this call
   * (its buffer may be overwritten).
   */
  run(ctx: GpuContext, call: KernelCall, inputs: (GpuValue | undefined)[], mayReuse: (i: number) => boolean): KernelOutputs;
}

/** Why the first `count` inputs of `n` are not all float32, if they are not. */
export function floatInputs(n: Node, count: number): string | undefined {
  for (let i = 0; i < count; i++) {
    const e = n.input(i)?.tensorType?.elemType;
    if (e !== DataType.FLOAT) return `input ${i} '${n.input(i)?.name}' is not float32`;
  }
  return undefined;
}

export const elementCount = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
export const f32 = (buffer: GPUBuffer, dims: readonly number[]): GpuValue => ({ buffer, dims: [...dims], type: 'float32' });

/** Input checks and output bookkeeping shared by the kernel entries, with errors naming the node. */
export function kernelIo(call: KernelCall, inputs: (GpuValue | undefined)[]) {
  const where = `${call.node} (our ${call.op} kernel)`;
  const drop: GPUBuffer[] = [];
  return {
    where,
    drop,
    /** Input `i`, present and of element type `type`. */
    need(i: number, name: string, type = 'float32'): GpuValue {
      const v = inputs[i] ?? fail('runtime', `${where}: input ${i} '${name}' is missing`);
      if (v.type !== type) fail('runtime', `${where}: input '${name}' is ${v.type}, expected ${type}`);
      return v;
    },
    sameDims(a: GpuValue, b: GpuValue, what: string): void {
      if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) fail('runtime', `${where}: ${what} [${a.dims}] and [${b.dims}] must have the same shape`);
    },
    /** Output `i` when the call reads it, else its buffer goes to `drop`. */
    keep(i: number, v: GpuValue): GpuValue | undefined {
      if (call.outputs[i] != null) return v;
      drop.push(v.buffer);
      return undefined;
    },
  };
}
