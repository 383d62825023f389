/// <reference types="@webgpu/types" />
/** The values alive within one step of the stage plan (./steps.ts): where each is and how it goes back. */
import type * as Ort from 'onnxruntime-web';
import { fail } from '../../errors.js';
import type { GpuValue } from './run-kernel.js';
import type { ValueAlias } from './stage-split.js';

/** A value alive within a step: where it is and how to hand it back. */
export interface Slot {
  value: GpuValue;
  /** The ORT tensor (an output, or our buffer wrapped for a feed; made on first ORT read). */
  tensor?: Ort.Tensor;
  /** The buffer is ORT's (an output of a run): handed back only after the group's submit. */
  ort?: boolean;
  release(): void;
}

/**
 * A Reshape view (StagePlan.aliases, or a glue view kernel): the source's buffer with the alias's dims; a view
 * of a graph input (a parameter fed on the GPU) has nothing of ours to hand back. A live source is
 * shared: its buffer goes back when both it and the view are released.
 */
export function view(live: Map<string, Slot>, feeds: Record<string, Ort.Tensor>, a: ValueAlias): Slot {
  const src = live.get(a.of);
  if (!src) {
    const f = feeds[a.of] ?? fail('runtime', `stage plan: no value '${a.of}' to view`);
    return { value: { buffer: f.gpuBuffer as unknown as GPUBuffer, dims: a.dims, type: f.type }, release: () => {} };
  }
  let refs = 2;
  const release = src.release;
  src.release = () => { if (--refs === 0) release(); };
  return { value: { ...src.value, dims: a.dims }, release: src.release, ort: src.ort };
}
