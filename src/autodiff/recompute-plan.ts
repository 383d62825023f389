/**
 * The recompute planner behind `--memory-budget`: choose which saved forward values the backward
 * recomputes so that one training step fits a memory budget with the least extra work.
 *
 * Candidates come from the graph, not from names: every saved value that ./recompute.ts can
 * rebuild from values the backward keeps anyway (attention probabilities and scores, SwiGLU and
 * RMSNorm outputs, reshaped and transposed copies, and — only here — projections, the MatMul of an
 * activation and a weight). Each candidate is priced by the cost model
 *
 *   bytes saved  = its size at the batch shape (it no longer lives from the forward into the backward)
 *   work added   = FLOPs of the forward nodes cloned for it (2·M·N·K per MatMul, one per output
 *                  element for anything else: a view or an elementwise op costs a pass over memory)
 *
 * and the candidates are taken in order of work per byte saved (free views first, projections
 * last). Backward ops with a recomputing form (SwiGLUMLPKeepGrad: the gate and up projections of
 * a fused MLP, 2·rows·I values for 4·rows·H·I FLOPs) are candidates too, one per node, priced the
 * same way; ties go to the larger candidate (a fused MLP's two [rows, I] tensors before a
 * projection's [rows, H]), then to the first layers: their kept values live from early in the
 * forward to the end of the backward, while the last layer's are read first in the backward, right
 * where the peak tends to be, and recomputing them there needs the same bytes as temporaries. The plan is the shortest prefix of that order whose predicted peak — the backend's
 * memory model applied to the static activation plan (./memory-plan.ts) of the graph with the
 * prefix recomputed — is within the budget (binary search over the prefix length; the peak falls
 * as the prefix grows). A budget below the peak with every candidate recomputed cannot be met:
 * the planner says so, with that smallest budget.
 */
import type { Model, Node, Value } from '../ir/graph.js';
import { fail } from '../errors.js';
import { cloneModel } from './clone.js';
import { boundShapes, memoryPlan, type DimsOf } from './memory-plan.js';
import { recomputeTrainingGraph } from './training.js';
import type { RecomputeOptions, RecomputeReport } from './recompute.js';
import { opWorkspace, type DifferentiableOp } from './types.js';

export interface PlanRequest {
  /** The batch shape the step runs at. */
  batch: number;
  seq: number;
  /** The backend's memory model: predicted step peak (bytes) from the activation plan's peak. */
  predict(activationBytes: number): number;
  /** FLOPs of one step without recomputation, the denominator of the overhead (e.g. 6 · parameters · tokens). */
  stepFlops: number;
  /** Bytes the step must fit in; undefined: the default rules of ./recompute.ts, no planning. */
  budget?: number;
  /** What a refusal names as the budget (default 'the memory budget'). */
  budgetName?: string;
  /** Graph outputs taken away as soon as they are made (gradients applied between segments): not kept to the end. */
  freeOutputs?: (v: Value) => boolean;
  /**
   * Backward ops with a recomputing form (RecomputeOptions.inOps): 'all' switched to it, 'none', or
   * 'plan' (default): as the budget needs, none without a budget.
   */
  inOps?: 'all' | 'none' | 'plan';
}

export interface RecomputePlan {
  /** The training graph with the plan applied (a copy; the input graph is not changed). */
  train: Model;
  /** Saved values the backward recomputes, and the forward nodes cloned for them. */
  values: number;
  nodes: number;
  /** Recomputed values that a MatMul makes (projections, attention scores, a fused MLP's gate and up): each a matmul again. */
  matmuls: number;
  /** Backward ops switched to their recomputing forms (each fused MLP recomputing its gate and up), of how many there are. */
  inOps: number;
  inOpsOf: number;
  /** Peak of the static activation plan at the batch shape, and the predicted step peak. */
  activationBytes: number;
  predictedBytes: number;
  /** FLOPs the recomputation adds per step, and as a fraction of `stepFlops`. */
  recomputeFlops: number;
  overhead: number;
  /** Predicted peak with every candidate recomputed (the smallest budget that can be met); only when planned to a budget. */
  minimumBytes?: number;
}

/** FLOPs of one node at the bound shapes (see the file header); 0 where a shape is unknown. */
export function nodeFlops(n: Node, dims: DimsOf): number {
  const numel = n.outputs.reduce((s, o) => s + (o ? dims(o)?.reduce((a, b) => a * b, 1) ?? 0 : 0), 0);
  if (n.opType === 'MatMul' || n.opType === 'Gemm') {
    const a = n.input(0) ? dims(n.input(0)!) : undefined;
    return 2 * numel * (a?.[a.length - 1] ?? 0);
  }
  return numel;
}

interface Applied {
  train: Model;
  report: RecomputeReport;
  activationBytes: number;
  flops: number;
}

/** `base` (a training graph built with recompute: false) with `opts` recomputed, measured at the batch shape. */
function applied(base: Model, opts: RecomputeOptions, ops: readonly DifferentiableOp[], req: PlanRequest): Applied {
  const { batch, seq } = req;
  const train = cloneModel(base);
  const report = recomputeTrainingGraph(train, opts, ops);
  const { dims, size } = boundShapes(train.graph, batch, seq);
  const flops = report.chosen.reduce((s, c) => s + c.cloned.reduce((t, n) => t + nodeFlops(n, dims), 0), 0) +
    report.inOps.reduce((s, c) => s + (c.flops(dims) ?? 0), 0);
  const plan = memoryPlan(train.graph, size, undefined, { freeOutputs: req.freeOutputs, workspace: opWorkspace(ops, dims) });
  return { train, report, activationBytes: plan.peakBytes, flops };
}

const GiB = 2 ** 30;
const gib = (b: number) => (b < GiB ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / GiB).toFixed(2)} GiB`);

/**
 * Plan the recomputation of `base` (a training graph built with `recompute: false`) for `req`:
 * to the budget when one is given, else the default rules of ./recompute.ts. Refuses (error
 * 'resources') a budget that cannot be met, naming the smallest one that can.
 */
export function planRecompute(base: Model, ops: readonly DifferentiableOp[], req: PlanRequest): RecomputePlan {
  const { batch, seq } = req;
  const inOpValues = (a: Applied) => a.report.inOps.reduce((s, c) => s + c.values.length, 0);
  const forms = new Set(ops.filter((o) => o.recomputingForm).map((o) => `${o.schema.domain}::${o.schema.name}`));
  const inOpsOf = base.graph.nodes.filter((n) => forms.has(`${n.domain}::${n.opType}`)).length;
  const inOps = req.inOps ?? 'plan';
  const plan = (a: Applied, minimumBytes?: number): RecomputePlan => ({
    train: a.train,
    values: a.report.values + inOpValues(a),
    nodes: a.report.nodes,
    matmuls: a.report.chosen.filter((c) => c.value.producer?.opType === 'MatMul').length + inOpValues(a),
    inOps: a.report.inOps.length,
    inOpsOf,
    activationBytes: a.activationBytes,
    predictedBytes: req.predict(a.activationBytes),
    recomputeFlops: a.flops,
    overhead: a.flops / req.stepFlops,
    minimumBytes,
  });
  if (req.budget === undefined) return plan(applied(base, { inOps: inOps === 'all' }, ops, req));

  // Every candidate, priced: the most the planner can recompute.
  const most = { projections: true, maxDepth: 8, inOps: inOps !== 'none' } as const;
  const all = applied(base, most, ops, req);
  const { dims, size } = boundShapes(all.train.graph, batch, seq);
  const priced = all.report.chosen.map((c) => ({
    name: c.value.name,
    bytes: size(c.value) ?? 0,
    flops: c.cloned.reduce((s, n) => s + nodeFlops(n, dims), 0),
  }));
  // Backward nodes run last layer first: reversed, ties go to the first layers.
  if (inOps === 'plan')
    for (const c of [...all.report.inOps].reverse())
      priced.push({ name: c.values[0].name, bytes: c.values.reduce((s, v) => s + (size(v) ?? 0), 0), flops: c.flops(dims) ?? 0 });
  priced.sort((a, b) => a.flops / Math.max(a.bytes, 1) - b.flops / Math.max(b.bytes, 1) || b.bytes - a.bytes);
  const minimumBytes = req.predict(all.activationBytes);
  const budget = req.budget;
  if (minimumBytes > budget)
    fail('resources', `${req.budgetName ?? 'the memory budget'} ${gib(budget)} does not fit a ${batch}x${seq} step: predicted peak ${gib(minimumBytes)} even with every recomputation (${all.report.values} values); the smallest budget that can be met is ${gib(Math.ceil(minimumBytes / 2 ** 20) * 2 ** 20)} (${Math.ceil(minimumBytes / 2 ** 20)}MiB)`);
  const prefix = (k: number) => {
    const take = new Set(priced.slice(0, k).map((c) => c.name));
    const accept = (v: Value) => take.has(v.name);
    return applied(base, { ...most, accept, inOps: inOps === 'plan' ? accept : inOps === 'all' }, ops, req);
  };
  // Shortest prefix within the budget; the full list fits (checked above).
  let lo = 0, hi = priced.length;
  let best: Applied = all;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const a = prefix(mid);
    if (req.predict(a.activationBytes) <= budget) {
      best = a;
      hi = mid;
    } else lo = mid + 1;
  }
  return plan(best, minimumBytes);
}

/** One line for the run's header: what is recomputed, the predicted peak and the extra work. */
export function describePlan(p: RecomputePlan, budget?: number): string {
  const mlp = p.inOpsOf ? `; ${p.inOps} of ${p.inOpsOf} fused MLPs recompute gate and up` : '';
  const what = `${p.values} values recomputed (${p.matmuls} matmul outputs, ${p.nodes} nodes cloned${mlp})`;
  const room = budget === undefined ? 'default recomputation rules' : `memory budget ${gib(budget)} (smallest possible ${gib(p.minimumBytes!)})`;
  return `memory: ${room}: ${what}, predicted peak ${gib(p.predictedBytes)} (activations ${gib(p.activationBytes)}), recompute overhead ${(100 * p.overhead).toFixed(1)}% of the step's FLOPs`;
}
