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
import { evalDim } from '../ir/infer/index.js';
import { ELEM_BYTES, lastUses, memoryPlan } from '../autodiff/memory-plan.js';

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

/**
 * The estimator for a training-step graph with `parameters` float32 parameter elements. Symbolic
 * dims of input_ids ([batch, seq]) are bound to the shape asked for; values whose size still
 * cannot be evaluated are not counted.
 */
export function stepMemoryModel(g: Graph, parameters: number): StepMemoryModel {
  const ids = g.inputs.find((v) => v.name === 'input_ids')?.tensorType?.shape ?? [];
  const last = lastUses(g); // liveness once; sizes per batch shape
  return {
    at(batch, seq) {
      const bindings: Record<string, number> = {};
      if (typeof ids[0] === 'string') bindings[ids[0]] = batch;
      if (typeof ids[1] === 'string') bindings[ids[1]] = seq;
      const size = (v: Value): number | undefined => {
        const t = v.tensorType;
        if (!t?.shape) return undefined;
        let n = ELEM_BYTES[t.elemType] ?? 4;
        for (const d of t.shape) {
          const x = evalDim(d, bindings);
          if (x === null) return undefined;
          n *= x;
        }
        return n;
      };
      const plan = memoryPlan(g, size, last);
      return { bytes: 6 * 4 * parameters + 1.5 * plan.peakBytes + 256 * 2 ** 20, activationBytes: plan.peakBytes, largest: plan.largest };
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
