/**
 * A crude but honest estimate of one training step's memory, before any session exists, so that
 * a batch shape that cannot fit is refused with the largest one that does instead of being killed.
 *
 *   bytes ≈ 6 · 4 · parameters          (weights, gradients, two AdamW moments, and the copies ORT
 *                                         and JS hold of parameters and gradients)
 *         + 1.5 · activation plan(B, T)  (the training graph run in node order, each value freed
 *                                         after its last reader: src/autodiff/memory-plan.ts's
 *                                         rule, evaluated on the symbolic shapes for [B, T])
 *         + 256 MiB                      (Node, ONNX Runtime, the tokenized text)
 *
 * Calibrated on bench/results/train-step-0.5b.md (Qwen2-0.5B-shaped, fused, 8 x 512: 19.3 GiB
 * measured peak RSS); on the WebGPU backend the limit that bites first is the adapter's largest
 * buffer, checked against the largest single tensor of the step.
 */
import type { Graph, Value } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import { numel } from '../ir/tensor.js';
import { boundShapes, lastUses, memoryPlan } from '../autodiff/memory-plan.js';
import { opWorkspace, opWorkspaceLargest, type DifferentiableOp } from '../autodiff/types.js';

const GiB = 2 ** 30;

export interface StepMemory {
  /** Estimated peak bytes of the step (see the file header). */
  bytes: number;
  /** Peak bytes of the activation plan alone. */
  activationBytes: number;
  /** The largest single tensor of the step (bytes and a description). */
  largest: { bytes: number; what: string };
}

/** Estimates the step's memory at any batch shape (the graph's liveness is computed once). */
export interface StepMemoryModel {
  at(batch: number, seq: number): StepMemory;
}

export type MemoryBackend = 'cpu' | 'webgpu';

/**
 * Predicted peak of a step from its parameter count and the peak of its static activation plan:
 * cpu, peak RSS (the file header's rule); webgpu, bytes in live WebGPU buffers: the trainer's
 * parameters and AdamW moments (3 · 4 · parameters) + WEBGPU_ACTIVATION_SCALE · the plan (whose
 * graph outputs include the gradients) + WEBGPU_OVERHEAD (ORT's pool beyond the plan, uniforms).
 */
export function stepPeak(backend: MemoryBackend, parameters: number, activationBytes: number, frozen = 0): number {
  if (backend === 'cpu') return 6 * 4 * parameters + FROZEN_COPIES.cpu * 4 * frozen + 1.5 * activationBytes + 256 * 2 ** 20;
  return 3 * 4 * parameters + FROZEN_COPIES.webgpu * 4 * frozen + WEBGPU_ACTIVATION_SCALE * activationBytes + WEBGPU_OVERHEAD;
}

/**
 * Copies of a float that does not train (a frozen weight under --freeze or LoRA, a constant): no
 * gradient and no moments, but on the cpu the model's initializer in JS and ORT's own copy of it;
 * on webgpu its GPU buffer (src/runtime/webgpu/frozen.ts). Not calibrated on a measured run: the
 * calibrations above are full fine-tunes, where these are small constants only.
 */
export const FROZEN_COPIES = { cpu: 2, webgpu: 1 } as const;

/** Float elements of the step graph that do not train: its float32 initializers. */
export function frozenElements(g: Graph): number {
  return g.initializers.filter((v) => v.initializer!.dtype === DataType.FLOAT).reduce((s, v) => s + numel(v.initializer!.dims), 0);
}

/** Calibration of the webgpu rule (bench/results/memory-budget.md). */
export const WEBGPU_ACTIVATION_SCALE = 1.31;
export const WEBGPU_OVERHEAD = 2.02 * GiB;

/**
 * The estimator for a training-step graph with `parameters` float32 parameter elements. Symbolic
 * dims of input_ids ([batch, seq]) are bound to the shape asked for; values whose size still
 * cannot be evaluated are not counted. `ops`: the fused ops whose internal temporaries count
 * (DifferentiableOp.workspace).
 */
export function stepMemoryModel(g: Graph, parameters: number, ops: readonly DifferentiableOp[] = []): StepMemoryModel {
  const last = lastUses(g); // liveness once; sizes per batch shape
  const frozen = frozenElements(g);
  return {
    at(batch, seq) {
      const { dims, size } = boundShapes(g, batch, seq);
      const plan = memoryPlan(g, size, last, { workspace: opWorkspace(ops, dims), workspaceLargest: opWorkspaceLargest(ops, dims) });
      return { bytes: stepPeak('cpu', parameters, plan.peakBytes, frozen), activationBytes: plan.peakBytes, largest: plan.largest };
    },
  };
}

/**
 * The largest batch shape whose estimate passes `fits`: the most sequences at `seq`, else (when
 * not even one fits) the longest sequence of one. Undefined when not even [1, 2] fits.
 */
export function largestFitting(m: StepMemoryModel, batch: number, seq: number, fits: (e: StepMemory) => boolean): { batch: number; seq: number } | undefined {
  const search = (lo: number, hi: number, ok: (x: number) => boolean): number => {
    // largest x in [lo, hi] with ok(x), given ok(lo); monotone
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (ok(mid)) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  if (fits(m.at(1, seq))) return { batch: search(1, batch, (b) => fits(m.at(b, seq))), seq };
  if (!fits(m.at(1, 2))) return undefined;
  return { batch: 1, seq: search(2, seq, (t) => fits(m.at(1, t))) };
}

/** Memory this process may use: the machine's RAM, or the cgroup's limit when lower. */
export function memoryLimit(total: number, cgroupMax?: string): number {
  const c = Number(cgroupMax?.trim());
  return Number.isFinite(c) && c > 0 ? Math.min(total, c) : total;
}

export const gib = (b: number) => `${(b / GiB).toFixed(b < 10 * GiB ? 2 : 1)} GiB`;
