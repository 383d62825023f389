/// <reference types="@webgpu/types" />
/**
 * The `webgpu` backend in a browser: the page's onnxruntime-web (webgpu build) on the browser's own
 * `navigator.gpu`, no Dawn and no shims. The training spec is made as in Node (./training-spec.ts,
 * which has no Node imports).
 */
import type { Model } from '../../ir/graph.js';
import { fail } from '../../errors.js';
import type { TrainerOptions } from '../trainer.js';
import { memoryMeter, type MemoryMeter } from './memory.js';
import type { OpPolicy } from './policy.js';
import { WebGpuTrainer, type OrtWeb, type SpecShape } from './trainer.js';
import { trainingSpec } from './training-spec.js';
import { FUSED_OPS } from '../../../custom-ops/registry.js';

/** True outside Node (a browser or a worker): no `process.versions.node`. */
export function notNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !p?.versions?.node;
}

let meter: MemoryMeter | undefined;

/**
 * A WebGpuTrainer in a browser for a training-step model (the arguments of
 * createNodeWebGpuTrainer). `ort` is the page's onnxruntime-web module, default: imported here.
 * The GPU memory meter is installed once, before the first trainer (so ORT's buffers count too).
 */
export async function createBrowserWebGpuTrainer(train: Model, initial: Map<string, Float32Array>, opts: TrainerOptions, policy: OpPolicy = {}, shape?: SpecShape, ort?: OrtWeb): Promise<{ trainer: WebGpuTrainer; meter: MemoryMeter }> {
  if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) fail('runtime', 'this browser has no WebGPU (navigator.gpu is missing): use a browser with WebGPU enabled');
  meter ??= memoryMeter();
  const web = ort ?? ((await import('onnxruntime-web/webgpu')) as unknown as OrtWeb);
  return { trainer: await WebGpuTrainer.create(web, trainingSpec(train, initial, policy, shape), opts, FUSED_OPS), meter };
}
