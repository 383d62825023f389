/**
 * WebGPU runtime pieces shared by the fused-op kernels (custom-ops/<op>/webgpu): device access in
 * Node, the program abstraction, buffers with an allocation log, the shared matmul and AdamW.
 */
export { AllocationLog, padTo16, type AllocationRecord, type HostArray } from './buffers.js';
export { GpuContext, type GpuContextOptions } from './context.js';
export { adamw, type AdamWStep, type AdamWTensor } from './adamw.js';
export { matmul, type MatmulArgs, type MatrixView } from './matmul.js';
export { loadDawn, installWriteBufferShim, preloadVulkanLoader, requestNodeAdapter, requestNodeDevice, useLiftoffOnly, useSwiftShaderIfPresent } from './dawn-node.js';
export { dispatch1d, generateWgsl, pipelineCount, type Program, type Uniform } from './program.js';
