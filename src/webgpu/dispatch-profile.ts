/**
 * Where GpuContext's host time goes (GpuContext.profile; bench/dispatch-host.ts, bench/train-step-webgpu.ts
 * --dispatch-profile).
 */

/**
 * Host milliseconds spent in the phases of `run` and `submit`, summed (set `GpuContext.profile`
 * to collect; bench/dispatch-host.ts). Timing costs a few performance.now() calls per dispatch.
 */
export interface DispatchProfile {
  dispatches: number;
  /** Argument checks. */
  check: number;
  /** Buffer creation through buffer(), upload(), temp(), scratch() (kernel outputs and scratch). */
  alloc: number;
  /** Pipeline lookup (key building and cache). */
  pipeline: number;
  /** Uniform bytes into their slot. */
  uniforms: number;
  /** Bind group creation or lookup. */
  bindGroup: number;
  /** setPipeline, setBindGroup, dispatchWorkgroups (and opening the pass). */
  pass: number;
  submits: number;
  /** submit(): finishing the encoder, queue.submit, freeing temporaries. */
  submit: number;
  /** Buffers created (not taken from the pool), bind groups created (not found in the cache), reused buffers cleared. */
  buffersCreated: number;
  groupsCreated: number;
  clears: number;
  /** Dispatches per program name (which kernels a step's dispatches come from). */
  byProgram: Record<string, number>;
}

/** A zeroed DispatchProfile. */
export function dispatchProfile(): DispatchProfile {
  return { dispatches: 0, check: 0, alloc: 0, pipeline: 0, uniforms: 0, bindGroup: 0, pass: 0, submits: 0, submit: 0, buffersCreated: 0, groupsCreated: 0, clears: 0, byProgram: {} };
}
