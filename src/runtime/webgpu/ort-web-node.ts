/**
 * The `webgpu` backend in Node: onnxruntime-web's WebGPU build on dawn.node, once per process, with
 * the shims of src/webgpu/dawn-node.ts (Vulkan loader, SwiftShader where no GPU driver is
 * installed, writeBuffer copy of SharedArrayBuffer views, --liftoff-only) and the GPU memory meter;
 * and a WebGpuTrainer for an IR training graph (its spec: ./training-spec.ts).
 */
import * as fs from 'node:fs';
import type { Model } from '../../ir/graph.js';
import { DAWN_F16_MATRIX_TOGGLES, loadDawn, useLiftoffOnly, useSwiftShaderIfPresent } from '../../webgpu/dawn-node.js';
import type { TrainerOptions } from '../trainer.js';
import { memoryMeter, type MemoryMeter } from './memory.js';
import type { OpPolicy } from './policy.js';
import { trainingSpec } from './training-spec.js';
import { WebGpuTrainer, type OrtWeb, type SpecShape } from './trainer.js';
import { FUSED_OPS } from '../../../custom-ops/registry.js';

const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/** A system Vulkan driver is installed (an ICD manifest in the standard places). */
function hasSystemVulkanDriver(): boolean {
  return ICD_DIRS.some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => f.endsWith('.json')));
}

let loaded: Promise<{ ort: OrtWeb; meter: MemoryMeter }> | undefined;
let dawnReady: Promise<MemoryMeter> | undefined;

/** Options of the first {@link nodeWebGpu} call in a process (later calls get what it made). */
export interface NodeWebGpuOptions {
  /**
   * Create Dawn with DAWN_F16_MATRIX_TOGGLES, under which NVIDIA's Vulkan driver offers shader-f16
   * and subgroup matrices (mixed precision's tensor-core GEMM); no effect on other adapters.
   */
  f16Matrix?: boolean;
}

/**
 * WebGPU for onnxruntime-web in this process, once: dawn.node as `navigator.gpu` with its shims and
 * the GPU memory meter, ready for any onnxruntime-web module (ours or a caller's). Without a system
 * Vulkan driver (CPU-only machines), Dawn uses chromium's SwiftShader when it is installed.
 */
export function nodeWebGpu(options: NodeWebGpuOptions = {}): Promise<MemoryMeter> {
  dawnReady ??= (async () => {
    if (!hasSystemVulkanDriver()) useSwiftShaderIfPresent();
    if (process.env.ORTFUSE_NO_LIFTOFF !== '1') useLiftoffOnly(); // =1: measure V8's tiering (bench/train-step-webgpu --settings)
    await loadDawn(options.f16Matrix ? [DAWN_F16_MATRIX_TOGGLES] : []);
    return memoryMeter();
  })();
  return dawnReady;
}

/** onnxruntime-web (webgpu build) ready to run in this process, once (see nodeWebGpu). */
export function nodeOrtWeb(options: NodeWebGpuOptions = {}): Promise<{ ort: OrtWeb; meter: MemoryMeter }> {
  loaded ??= (async () => {
    const meter = await nodeWebGpu(options);
    const ort = (await import('onnxruntime-web/webgpu')) as unknown as OrtWeb;
    ort.env.wasm.numThreads = 1;
    return { ort, meter };
  })();
  return loaded;
}

/** A WebGpuTrainer in Node for a training-step model (same arguments as CpuTrainer.create). */
export async function createNodeWebGpuTrainer(train: Model, initial: Map<string, Float32Array>, opts: TrainerOptions, policy: OpPolicy = {}, shape?: SpecShape, ort?: OrtWeb): Promise<WebGpuTrainer> {
  const spec = trainingSpec(train, initial, policy, shape);
  // A caller's onnxruntime-web (its env and GPUDevice shared with their sessions), else ours: with
  // the tensor cores' toggles for a mixed-precision graph (the first WebGPU user of the process decides).
  return WebGpuTrainer.create(ort ?? (await nodeOrtWeb({ f16Matrix: !!spec.lossScale })).ort, spec, opts, FUSED_OPS);
}
