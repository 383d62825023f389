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
import { boundShapes, memoryPlan } from '../autodiff/memory-plan.js';
import { opWorkspace } from '../autodiff/types.js';
import { GRAD_PREFIX } from '../autodiff/index.js';
import { FUSED_OPS, GPU_CHUNK_ROWS, ligerChunkSize } from '../../custom-ops/index.js';
import { ORTFUSE_DOMAIN } from '../fused/types.js';
import { FROZEN_COPIES, frozenElements, stepPeak, type MemoryBackend } from './memory-estimate.js';
import { parseKernels } from './webgpu/policy.js';

export interface MemoryRequest {
  batch: number;
  seq: number;
  backend: MemoryBackend;
  /** Bytes; undefined: default recomputation, the plan only reports. */
  budget?: number;
  /** Gradients are applied and handed back as soon as they are made (webgpu stage plan without clipping). */
  gradientsApplied?: boolean;
  /** Whether each fused MLP's backward recomputes its gate and up projections (default 'auto': {@link mlpInOps}). */
  mlpRecompute?: MlpRecompute;
  /** Mixed precision (`--precision mixed`): 'auto' recomputes the fused MLP's gate and up there. */
  mixed?: boolean;
}

/** `--mlp-recompute`: the fused MLP's backward recomputes gate and up ('on'), reads them kept from the forward ('off'), or as chosen ('auto'). */
export type MlpRecompute = 'on' | 'off' | 'auto';
export const MLP_RECOMPUTE: readonly MlpRecompute[] = ['on', 'off', 'auto'];

/**
 * The planner's choice for backward ops with a recomputing form (the fused MLP's: PlanRequest.inOps)
 * under `--mlp-recompute`. 'on': recomputed. 'off': kept; under a budget, kept in as many layers as
 * the budget allows (the planner switches the rest). 'auto' (default): as 'off' on webgpu at fp32
 * precision, where our GEMMs make the two recomputed GEMMs a layer cost more than the kept bytes
 * (H200, 0.5B fp32 8×512, session 12: 441 ms a step kept vs 491 recomputed, 13.36 vs 10.46 GiB by
 * nvidia-smi, Liger 17.27 GiB; bench/results/step-speed-h200-s12.md), and as 'on' elsewhere: on cpu
 * (ORT runs the bodies) and under mixed precision, whose point is the smaller peak. (Session 7 had
 * measured the opposite on the H200, kept slower as well as larger, when ORT still ran the GEMMs.)
 */
export function mlpInOps(choice: MlpRecompute | undefined, budgeted: boolean, backend: string, mixed = false): 'all' | 'none' | 'plan' {
  if (choice !== undefined && !MLP_RECOMPUTE.includes(choice)) fail('usage', `--mlp-recompute ${choice}: expected one of ${MLP_RECOMPUTE.join(', ')}`);
  const keep = choice === 'off' || ((choice ?? 'auto') === 'auto' && backend === 'webgpu' && !mixed);
  if (keep) return budgeted ? 'plan' : 'none';
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
 * bytes of released buffers may not be freed yet (src/runtime/webgpu/host-ahead.ts unfreedBytes): the
 * host otherwise runs far ahead, and what Dawn has not freed piles up. H200, 0.5B fused,
 * budget-free (bench/results/memory-budget.md, call 8): nvidia-smi 28.40 GiB unbounded vs 21.37
 * with 1 GiB at 8×1024 (live buffers 20.70); 17.77 vs 16.11 at 8×512 (15.16).
 */
export const FREE_UNFREED_BYTES = 2 * 2 ** 30;

/**
 * The trainer settings a memory budget brings, or its absence (both backends read the ones that
 * apply to them). Under a budget our kernels' buffers are not pooled (bufferPool 0) and ORT-web's
 * cache rounds to buckets (ortBufferCache 'bucket'): the planner's budget constants were fitted so.
 */
export function budgetTrainerOptions(budgeted: boolean): { inFlight?: number; unfreedBytes?: number; bufferPool?: number; ortBufferCache?: 'bucket'; session?: { enableCpuMemArena: false } } {
  return budgeted ? { inFlight: BUDGET_IN_FLIGHT, bufferPool: 0, ortBufferCache: 'bucket', session: BUDGET_CPU_SESSION } : { unfreedBytes: FREE_UNFREED_BYTES };
}

/** Float32 parameter elements of a training graph (inputs with a gradient output). */
function trainedElements(train: Model): number {
  const outs = new Set(train.graph.outputs.map((v) => v.name));
  return train.graph.inputs
    .filter((v) => outs.has(GRAD_PREFIX + v.name))
    .reduce((s, v) => s + (v.tensorType?.shape ?? []).reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1), 0);
}

/**
 * Budget-free webgpu: what nvidia-smi reads. The resident buffers — weights, AdamW moments and
 * every gradient (clipped: all live at the step's end) at 16 bytes a parameter, 12 when gradients
 * are applied as they come — plus the activation peak with the gradients left out (memoryPlan with
 * them freed), the lm_head kernel's logits tile (`flceTileBytes`: not in the plan), and what the
 * process holds beyond its live buffers: a fixed part (the GPU context, Dawn, ORT-web) and a part
 * per token of the batch (released buffers our pool and Dawn keep for reuse or have not freed yet).
 *
 * Fitted on the H200 runs of session 12 (0.5B, all ops fused, replayed steps, 1024-row logits
 * tiles where the run had them; bench/results/memory-predict-s13.md): within ±3% of 8×512 kept
 * and recomputed MLP, 8×256 kept and recomputed, 1×128. The rule before (2.34 × activations −
 * 1.09 GiB, fitted in session 7 when ORT-web still ran most of the step) predicted 17.61 GiB for
 * 13.82 at 8×512 and 7.68 for 9.08 at 8×256 recomputed.
 */
export const FREE_WEBGPU_FIXED = 1.19 * 2 ** 30;
export const FREE_WEBGPU_PER_TOKEN = 0.29 * 2 ** 20;

/**
 * Bytes of the largest [rows, V] fp32 logits tile the webgpu FusedLinearCrossEntropy kernels of
 * `train` make at B·T = `tokens` rows: their chunk_size, else the kernel's own rule (at least
 * GPU_CHUNK_ROWS rows: custom-ops/fused-linear-cross-entropy/webgpu/flce.ts gpuChunkRows).
 */
export function flceTileBytes(train: Model, tokens: number): number {
  let most = 0;
  for (const n of train.graph.nodes) {
    if (n.domain !== ORTFUSE_DOMAIN || !n.opType.startsWith('FusedLinearCrossEntropy')) continue;
    const [v, h] = n.inputs[1]?.tensorType?.shape ?? [];
    if (typeof v !== 'number' || typeof h !== 'number') continue;
    const rows = Math.min(tokens, n.attrInt('chunk_size', 0) || Math.max(ligerChunkSize(tokens, v, h), GPU_CHUNK_ROWS));
    most = Math.max(most, rows * v * 4);
  }
  return most;
}

/** The budget-free webgpu prediction for the planned step graph `train` (see FREE_WEBGPU_FIXED). */
export function budgetFreeWebgpuPeak(train: Model, req: MemoryRequest, parameters: number, frozen: number): number {
  const { dims, size } = boundShapes(train.graph, req.batch, req.seq);
  const act = memoryPlan(train.graph, size, undefined, { workspace: opWorkspace(FUSED_OPS, dims), freeOutputs: (v) => v.name.startsWith(GRAD_PREFIX) }).peakBytes;
  const gradients = req.gradientsApplied ? 0 : 4 * parameters; // applied early, they never all live
  const resident = 12 * parameters + gradients + FROZEN_COPIES.webgpu * 4 * frozen;
  const tokens = req.batch * req.seq;
  return resident + act + flceTileBytes(train, tokens) + FREE_WEBGPU_FIXED + FREE_WEBGPU_PER_TOKEN * tokens;
}

/** Plan the recomputation of `base` (built with recompute: false) for `req` (see the file header). */
export function planMemory(base: Model, req: MemoryRequest): RecomputePlan {
  if (req.budget !== undefined && !(req.budget > 0)) fail('usage', `--memory-budget must be a positive size (got ${req.budget} bytes)`);
  const parameters = trainedElements(base);
  const frozen = frozenElements(base.graph);
  const plan = planRecompute(base, FUSED_OPS, {
    batch: req.batch,
    seq: req.seq,
    budget: req.budget,
    budgetName: '--memory-budget',
    predict: (act) => stepPeak(req.backend, parameters, act, frozen),
    stepFlops: 6 * parameters * req.batch * req.seq,
    freeOutputs: req.gradientsApplied ? (v) => v.name.startsWith(GRAD_PREFIX) : undefined,
    inOps: mlpInOps(req.mlpRecompute, req.budget !== undefined, req.backend, req.mixed),
  });
  // Without a budget nothing is chosen against the prediction: webgpu's is the budget-free rule.
  if (req.backend === 'webgpu' && req.budget === undefined) plan.predictedBytes = budgetFreeWebgpuPeak(plan.train, req, parameters, frozen);
  return plan;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kb: 1e3, kib: 2 ** 10, m: 2 ** 20, mb: 1e6, mib: 2 ** 20, g: 2 ** 30, gb: 1e9, gib: 2 ** 30, t: 2 ** 40, tb: 1e12, tib: 2 ** 40 };

/** A size such as 12GiB, 12G (GiB), 16GB (10^9), 800MiB or a number of bytes; undefined when not one. */
export function parseSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  return m && unit !== undefined && Number(m[1]) > 0 ? Math.round(Number(m[1]) * unit) : undefined;
}
