/**
 * The WebGPU layer under the fused-op kernels (custom-ops/<op>/webgpu) and the staged trainer
 * (src/runtime/webgpu): a device in Node (dawn.node), the program runner (GpuContext, programs),
 * buffers with an allocation log, and the shared kernels (matmul, workgroup reductions, AdamW,
 * global-norm clipping). It knows nothing of ortfuse but src/errors (test/layering.test.ts).
 */
export { AllocationLog, padTo16, type AllocationRecord, type HostArray } from './buffers.js';
export { GpuContext, type GpuContextOptions } from './context.js';
export { adamw, type AdamWStep, type AdamWTensor } from './adamw.js';
export { clipByGlobalNorm, partialCount, type NormTensor } from './grad-norm.js';
export { matmul, type MatmulArgs, type MatrixView } from './matmul.js';
export { loadDawn, installWriteBufferShim, preloadVulkanLoader, requestNodeAdapter, requestNodeDevice, useLiftoffOnly, useSwiftShaderIfPresent } from './dawn-node.js';
export { dispatch1d, generateWgsl, pipelineCount, type Program, type Uniform } from './program.js';
export { reduceArgs, reductionWgsl } from './reduce.js';
