/**
 * Pipelines are explicit lists of passes (order matters; comments say why where it does).
 * `runPipeline` runs them, times them, optionally checks the model after each pass, and
 * collects the per-pass report.
 */
import { check } from './ir/checker.js';
import type { Model } from './ir/graph.js';
import { newContext, type ExplainEntry, type Pass } from './rewrite/pass.js';
import { constantFold } from '../passes/constant-fold.js';
import { cse } from '../passes/cse.js';
import { dce } from '../passes/dce.js';
import { dropLogits } from '../passes/drop-logits.js';
import { fuseCausalAttentionPass } from '../passes/fuse-causal-attention.js';
import { fuseLinearPass } from '../passes/fuse-linear.js';
import { fuseLinearCrossEntropyPass } from '../passes/fuse-linear-cross-entropy.js';
import { fuseRmsNormPass } from '../passes/fuse-rms-norm.js';
import { fuseRopePass } from '../passes/fuse-rope.js';
import { fuseSwigluPass } from '../passes/fuse-swiglu.js';
import { fuseSwigluMlpPass } from '../passes/fuse-swiglu-mlp.js';
import { removeNoops } from '../passes/remove-noops.js';
import { scatterAddIntoPass } from '../passes/scatter-add-into.js';
import { stackProjections } from '../passes/stack-projections.js';

export interface PassReport {
  name: string;
  modified: boolean;
  counts: Record<string, number>;
  ms: number;
}

export interface PipelineReport {
  passes: PassReport[];
  /** Rules that matched nothing, with their best partial match (when `explain` is on). */
  explanations: ExplainEntry[];
}

export interface PipelineOptions {
  /** Run the checker after every pass (tests do; the CLI does it once at the end). */
  checkEachPass?: boolean;
  explain?: boolean;
  /** Options passed to passes (e.g. { training: true }). */
  options?: Record<string, unknown>;
}

/** The cleanup passes, in order. */
export function cleanupPipeline(): Pass[] {
  return [
    // First: folding turns shape plumbing (Shape/Gather/Concat/...) into initializers, which
    // makes Reshape targets constant for remove-noops and gives CSE identical constants to merge.
    constantFold,
    // Before CSE: dropping Identity/Cast/Reshape no-ops exposes duplicates hidden behind them.
    removeNoops,
    cse,
    // Last: removes what the passes above left unread (folded-away nodes, merged initializers).
    dce,
  ];
}

/** Fusions that are off by default. */
export interface FusionOptions {
  /**
   * The whole SwiGLU MLP as one op (passes/fuse-swiglu-mlp.ts; `--fuse-mlp`): off in the default
   * pipeline (optimize, cpu training); webgpu training turns it on (src/runtime/session.ts defaultFuseMlp).
   */
  mlp?: boolean;
  /**
   * Each layer's causal attention as one op (passes/fuse-causal-attention.ts; `--fuse-attention`):
   * off everywhere until its H200 measurement.
   */
  attention?: boolean;
  /**
   * Every remaining projection by a parameter as one Linear op (passes/fuse-linear.ts;
   * `--fuse-linear`; in a Qwen2 the attention projections): off everywhere until its H200 measurement.
   */
  linear?: boolean;
  /**
   * With `linear`: the Linear ops that project one input as one Linear over their stacked weights
   * and a Split (passes/stack-projections.ts; in a Qwen2 q, k and v): off until its H200 measurement.
   */
  stackProjections?: boolean;
}

/** The fusion passes, in order. */
export function fusionPipeline(opts: FusionOptions = {}): Pass[] {
  return [
    // RMSNorm, SwiGLU and RoPE match disjoint nodes (their order among themselves is free).
    // They run before linear-CE: the first of them infers shapes on untyped (builder-made)
    // graphs, which linear-CE's size checks read, and the lm_head's hidden input is then the
    // output of one fused RMSNorm node rather than the tail of the unfused chain.
    fuseRmsNormPass,
    fuseSwigluPass,
    // After fuse-swiglu: it matches the three projections around a fused SwiGLU node.
    ...(opts.mlp ? [fuseSwigluMlpPass] : []),
    fuseRopePass,
    // After fuse-rope (its q and k are then RoPE nodes' outputs; either order matches).
    ...(opts.attention ? [fuseCausalAttentionPass] : []),
    // Last of the fusions: it reads the lm_head's hidden input as left by the rules above.
    fuseLinearCrossEntropyPass,
    // After linear-CE (it recognises the logits by the fused loss's weight); only with
    // options.training / options.dropLogits. The cleanup after it removes the lm_head MatMul.
    dropLogits,
    // Last: it takes the MatMuls by parameters the rules above left (the MLP's belong to
    // SwiGLUMLP, attention's products read no parameter, and it skips the lm_head's weight).
    ...(opts.linear ? [fuseLinearPass] : []),
    // After fuse-linear: it stacks the Linear ops that read one input.
    ...(opts.linear && opts.stackProjections ? [stackProjections] : []),
  ];
}

/** The default `optimize` pipeline: cleanup (CSE shares the RoPE cos/sin) → fusions → cleanup. */
export function defaultPipeline(opts: FusionOptions = {}): Pass[] {
  return [...cleanupPipeline(), ...fusionPipeline(opts), ...cleanupPipeline()];
}

/**
 * The passes on the training-step graph that autodiff built (src/runtime/session.ts trainingGraph,
 * `optimize --train`), for every backend.
 */
export function stepPipeline(): Pass[] {
  return [
    // A tied weight's gradient: the embedding's scatter adds into the lm_head's gradient, not onto zeros.
    scatterAddIntoPass,
    // Last: the zeros' Expand (and what only it read) that nothing reads any more.
    dce,
  ];
}

export function runPipeline(model: Model, passes: Pass[], opts: PipelineOptions = {}): PipelineReport {
  const ctx = newContext(opts.options ?? {}, opts.explain ?? false);
  const report: PipelineReport = { passes: [], explanations: ctx.explanations };
  for (const p of passes) {
    const t0 = performance.now();
    const r = p.run(model, ctx);
    report.passes.push({ name: p.name, modified: r.modified, counts: r.counts, ms: performance.now() - t0 });
    if (opts.checkEachPass) check(model, `after pass ${p.name}`);
  }
  return report;
}
