/**
 * `--memory-budget` (library option `memoryBudget`) on the runtime side: the backend's memory model
 * (./memory-estimate.ts stepPeak) handed to the recompute planner (src/autodiff/recompute-plan.ts),
 * which picks what the backward recomputes so the step's predicted peak fits the budget with the
 * least extra work, or refuses the budget (error 'resources', exit 9) naming the smallest one that
 * can be met — all before any session exists. Without a budget the default recomputation rules
 * run and the plan only reports their predicted peak and overhead.
 */
import type { Model } from '../ir/graph.js';
import { fail } from '../errors.js';
import { planRecompute, type RecomputePlan } from '../autodiff/recompute-plan.js';
import { boundShapes } from '../autodiff/memory-plan.js';
import { opWorkspace } from '../autodiff/types.js';
import { DEFAULT_POOL_BYTES } from './webgpu/trainer.js';
import { GRAD_PREFIX } from '../autodiff/index.js';
import { FUSED_OPS } from '../../custom-ops/index.js';
import { frozenElements, stepPeak, type MemoryBackend } from './memory-estimate.js';
import { parseKernels } from './webgpu/policy.js';

export interface MemoryRequest {
  batch: number;
  seq: number;
  backend: MemoryBackend;
  /** Bytes; undefined: default recomputation, the plan only reports. */
  budget?: number;
  /** Gradients are applied and handed back as soon as they are made (webgpu stage plan without clipping). */
  gradientsApplied?: boolean;
  /** Budget-free webgpu: TrainerOptions.bufferPool (default DEFAULT_POOL_BYTES). */
  bufferPool?: number;
  /** Whether each fused MLP's backward recomputes its gate and up projections (default 'auto': {@link mlpInOps}). */
  mlpRecompute?: MlpRecompute;
}

/** `--mlp-recompute`: the fused MLP's backward recomputes gate and up ('on'), reads them kept from the forward ('off'), or as chosen ('auto'). */
export type MlpRecompute = 'on' | 'off' | 'auto';
export const MLP_RECOMPUTE: readonly MlpRecompute[] = ['on', 'off', 'auto'];

/**
 * The planner's choice for backward ops with a recomputing form (the fused MLP's: PlanRequest.inOps)
 * under `--mlp-recompute`. 'auto' (default) and 'on': recomputed, on both backends — on the H200
 * the kept form was slower as well as larger (0.5B 8×512: 3,923 vs 4,727 tok/s, 13.46 vs 11.02 GiB;
 * 8×1024: 1,795 vs 1,944; bench/results/memory-budget.md, session 7), so keeping gate and up is
 * not the default anywhere. 'off': kept; under a budget, kept in as many layers as the budget
 * allows (the planner switches the rest).
 */
export function mlpInOps(choice: MlpRecompute | undefined, budgeted: boolean): 'all' | 'none' | 'plan' {
  if (choice !== undefined && !MLP_RECOMPUTE.includes(choice)) fail('usage', `--mlp-recompute ${choice}: expected one of ${MLP_RECOMPUTE.join(', ')}`);
  if (choice === 'off') return budgeted ? 'plan' : 'none';
  return 'all';
}

/**
 * Whether the webgpu trainer applies AdamW per gradient between segments: a stage plan (some fused
 * op on our kernel; the default policy) and no clipping.
 */
export function gradientsAppliedEarly(backend: string, clip: number, kernels: string | undefined): boolean {
  return backend === 'webgpu' && clip === 0 && Object.values(parseKernels(kernels ?? 'default', FUSED_OPS)).includes('kernel');
}

/**
 * Under a budget, the cpu backend's session runs without onnxruntime-node's CPU arena: the arena
 * keeps its high-water mark (and fragments), which the plan cannot see. 0.5B fused 8×512 at 16 GiB,
 * peak RSS 19.00 GiB with the arena vs 14.99 without (predicted 15.93), step 91 → 129 s on 2 cores
 * (bench/results/memory-budget.md).
 */
export const BUDGET_CPU_SESSION = { enableCpuMemArena: false } as const;

/**
 * Under a budget, the webgpu stage plan's host runs at most this many submissions (ORT runs, kernel
 * groups) ahead of the GPU, so buffers handed back are freed soon (src/runtime/webgpu/steps.ts
 * inFlight). H200, 0.5B fused (bench/results/memory-budget.md, 2026-12-04 call 4): nvidia-smi minus
 * live buffers 0.74 GiB at 8×512 and 1.28-1.66 GiB at 8×1024, against 3.1 and 13.2 GiB without a
 * bound; 13-17% fewer tok/s than without it (two timed steps), so budget-free runs leave it off.
 * 2 rather than 4: at 8×1024 under 14 GiB, nvidia-smi read 16.11 GiB with 4 and 15.09 with 2 or 1
 * (2,171 / 2,343 tok/s against 2,178 with 4); 8×512 under 11 GiB with 2: 10.61 GiB, 3,890 tok/s
 * (memory-budget.md, call 5).
 */
export const BUDGET_IN_FLIGHT = 2;

/**
 * Without a budget, the webgpu stage plan's host waits for the GPU only when more than this many
 * bytes of released buffers may not be freed yet (src/runtime/webgpu/steps.ts unfreedBytes): the
 * host otherwise runs far ahead, and what Dawn has not freed piles up. H200, 0.5B fused,
 * budget-free (bench/results/memory-budget.md, call 8): nvidia-smi 28.40 GiB unbounded vs 21.37
 * with 1 GiB at 8×1024 (live buffers 20.70); 17.77 vs 16.11 at 8×512 (15.16).
 */
export const FREE_UNFREED_BYTES = 2 * 2 ** 30;

/**
 * The trainer settings a memory budget brings, or its absence (both backends read the ones that
 * apply to them). Under a budget our kernels' buffers are not pooled (bufferPool 0): the planner's
 * webgpu constants were fitted without the pool, whose free buffers count as live.
 */
export function budgetTrainerOptions(budgeted: boolean): { inFlight?: number; unfreedBytes?: number; bufferPool?: number; session?: { enableCpuMemArena: false } } {
  return budgeted ? { inFlight: BUDGET_IN_FLIGHT, bufferPool: 0, session: BUDGET_CPU_SESSION } : { unfreedBytes: FREE_UNFREED_BYTES };
}

/** Float32 parameter elements of a training graph (inputs with a gradient output). */
function trainedElements(train: Model): number {
  const outs = new Set(train.graph.outputs.map((v) => v.name));
  return train.graph.inputs
    .filter((v) => outs.has(GRAD_PREFIX + v.name))
    .reduce((s, v) => s + (v.tensorType?.shape ?? []).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1), 0);
}

/**
 * Budget-free webgpu: bytes our kernels' buffer pool holds between uses (free buffers, live to
 * Dawn), bounded by the pool's size: about one fused op's released intermediates, which the next
 * call of that op takes back (the largest DifferentiableOp.workspace of the step). H200, session 7,
 * call 1 (memory-budget.md): without this term the prediction was +2.1% at 8×512 and −12.8% at
 * 8×1024, where the MLP backward's workspace is twice as large.
 */
export function poolHeld(base: Model, req: MemoryRequest): number {
  const pool = req.bufferPool ?? DEFAULT_POOL_BYTES;
  if (pool <= 0) return 0;
  const workspace = opWorkspace(FUSED_OPS, boundShapes(base.graph, req.batch, req.seq).dims);
  return Math.min(pool, base.graph.nodes.reduce((m, n) => Math.max(m, workspace(n)), 0));
}

/**
 * Budget-free webgpu: released bytes Dawn has not freed yet when the peak is reached, as a multiple
 * of the step's largest activation (a value that grows with the batch; at 0.5B, the attention probabilities [B, 14, T, T]: ORT-web
 * releases and re-creates its intermediates every segment run), at most FREE_UNFREED_BYTES. H200,
 * session 7, calls 1 and 6 (memory-budget.md), nvidia-smi minus live buffers: 0.52-1.14 GiB at
 * 8×512, 1.47-1.51 GiB at 8×1024 (where the bound was reached 116-143 times a run); the quarter of
 * the bound this replaces predicted 8×1024 −11.7% under what the process held.
 */
export const UNFREED_LARGEST = 4;

export function unfreedAllowance(base: Model, req: MemoryRequest): number {
  // Activations only: values that grow with the batch (not weights and their gradients).
  const { size } = boundShapes(base.graph, req.batch, req.seq), one = boundShapes(base.graph, 1, 1).size;
  let largest = 0;
  for (const n of base.graph.nodes) for (const o of n.outputs) {
    const b = size(o) ?? 0;
    if (b > (one(o) ?? 0)) largest = Math.max(largest, b);
  }
  return Math.min(FREE_UNFREED_BYTES, UNFREED_LARGEST * largest);
}

/** Plan the recomputation of `base` (built with recompute: false) for `req` (see the file header). */
export function planMemory(base: Model, req: MemoryRequest): RecomputePlan {
  if (req.budget !== undefined && !(req.budget > 0)) fail('usage', `--memory-budget must be a positive size (got ${req.budget} bytes)`);
  const parameters = trainedElements(base);
  const frozen = frozenElements(base.graph);
  // Budget-free webgpu: what the process holds is the live buffers, our kernels' buffer pool and
  // released bytes Dawn has not freed yet (bounded by FREE_UNFREED_BYTES).
  const unfreed = req.backend === 'webgpu' && req.budget === undefined ? unfreedAllowance(base, req) + poolHeld(base, req) : 0;
  return planRecompute(base, FUSED_OPS, {
    batch: req.batch,
    seq: req.seq,
    budget: req.budget,
    budgetName: '--memory-budget',
    predict: (act) => stepPeak(req.backend, parameters, act, frozen) + unfreed,
    stepFlops: 6 * parameters * req.batch * req.seq,
    freeOutputs: req.gradientsApplied ? (v) => v.name.startsWith(GRAD_PREFIX) : undefined,
    inOps: mlpInOps(req.mlpRecompute, req.budget !== undefined),
  });
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 1e3, kib: 2 ** 10, m: 2 ** 20, mb: 1e6, mib: 2 ** 20, g: 2 ** 30, gb: 1e9, gib: 2 ** 30, t: 2 ** 40, tb: 1e12, tib: 2 ** 40 };

/** A size such as 12GiB, 12G (GiB), 16GB (10^9), 800MiB or a number of bytes; undefined when not one. */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  return m && unit !== undefined && Number(m[1]) > 0 ? Math.round(Number(m[1]) * unit) : undefined;
}
