/**
 * Preparing a training run: fuse the forward model (unless told not to), lower what the target
 * cannot run on its device (webgpu: the loss ops, passes/lower-softmax-cross-entropy, and sdpa's
 * IsNaN guard, passes/nan-guard), build the training-step graph (autodiff) and run the step
 * passes on it (src/pipeline.ts stepPipeline), attach the fused ops' portable bodies, and read the
 * initial parameter values.
 */
import { upcastToFloat32, type UpcastReport } from '../../passes/upcast-float.js';
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import { defaultPipeline, runPipeline, stepPipeline, type PipelineReport } from '../pipeline.js';
import { buildTrainingGraph, trainingSignature } from '../autodiff/index.js';
import { ensureFunctions, FUSED_OPS, GPU_BUDGET_CHUNK_ROWS, ORTFUSE_DOMAIN } from '../../custom-ops/index.js';
import { makeAttr } from '../ir/builder.js';
import { newContext } from '../rewrite/pass.js';
import { lowerSoftmaxCrossEntropyPass } from '../../passes/lower-softmax-cross-entropy.js';
import { nanGuardPass } from '../../passes/nan-guard.js';
import { markMixedPrecision } from '../../passes/mixed-precision.js';
import type { Precision } from './loss-scale.js';
import { discoverParameters, type ParameterDiscovery } from '../params/discover.js';
import { adoptParameters, nameLoss } from '../params/adopt.js';
import { selectParameters, type ParameterReport, type Selection } from '../params/select.js';
import { addLora, type LoraAdapters } from '../params/lora.js';
import type { ResolvedLora } from '../params/lora-config.js';
import type { RecomputePlan } from '../autodiff/recompute-plan.js';
import { mlpInOps, planMemory, type MemoryRequest, type MlpRecompute } from './memory-budget.js';

export interface PreparedTraining {
  /** The training-step graph (parameters, input_ids, labels → loss, grad.<p>). */
  train: Model;
  /** Initial parameter values, by parameter name. */
  initial: Map<string, Float32Array>;
  /** Size of the embedding table (largest valid token id + 1). */
  vocab: number;
  /** The optimize report when the model was fused. */
  report?: PipelineReport;
  parameters: string[];
  /** What trains, what is frozen, what is a buffer (src/params/select.ts). */
  parameterReport: ParameterReport;
  /** The parameters as discovered (torch names, aliases of tied weights, shapes). */
  discovery: ParameterDiscovery;
  /** With `lora`: the adapters added (only their A and B train). */
  lora?: LoraAdapters;
  /** What the backward recomputes and the predicted peak, when planned (TrainingGraphOptions.memory). */
  memory?: RecomputePlan;
  /** Set when the export was half precision (bfloat16 / float16) and was upcast to fp32 (passes/upcast-float.ts). */
  upcast?: UpcastReport;
  /** precision 'mixed': the fused ops marked for f16 GEMM operands (passes/mixed-precision.ts); the graph takes `loss_scale`. */
  mixed?: { marked: number };
}

/** Vocabulary size: rows of the table gathered by `input_ids`. */
export function vocabSize(model: Model): number {
  const ids = model.graph.inputs.find((v) => v.name === 'input_ids') ?? fail('invalid', "the model has no 'input_ids' input");
  for (const u of ids.uses())
    if (u.node.opType === 'Gather' && u.index === 1) {
      const table = u.node.input(0)!;
      const dims = table.initializer?.dims ?? table.tensorType?.shape;
      if (dims && typeof dims[0] === 'number') return dims[0];
    }
  const logits = model.graph.outputs.find((v) => v.name === 'logits')?.tensorType?.shape;
  const last = logits?.[logits.length - 1];
  if (typeof last === 'number') return last;
  return fail('invalid', "cannot tell the vocabulary size (no Gather of 'input_ids' from a known table, no logits output)");
}

export interface TrainingGraphOptions {
  fuse: boolean;
  /** With `fuse`: also fuse each whole SwiGLU MLP into one SwiGLUMLP op (`--fuse-mlp`; default false here: callers pass defaultFuseMlp). */
  fuseMlp?: boolean;
  /** With `fuse`: also fuse each layer's causal attention into one CausalAttention op (`--fuse-attention`; default false until measured). */
  fuseAttention?: boolean;
  /** With `fuse`: also fuse each remaining projection by a parameter into one Linear op (`--fuse-linear`; default false until measured). */
  fuseLinear?: boolean;
  /** With `fuseLinear`: the Linear ops that project one input stacked into one (passes/stack-projections.ts; q, k, v); default false until measured. */
  stackProjections?: boolean;
  target?: 'cpu' | 'webgpu';
  /** Recompute cheap forward values in the backward (default true; src/autodiff/recompute.ts). */
  recompute?: boolean;
  /** Parameters to train, by name (default: buildTrainingGraph's own choice). */
  parameters?: ReadonlySet<string>;
  /** Plan the recomputation for this batch shape and backend, to `budget` when given (./memory-budget.ts). */
  memory?: MemoryRequest;
  /**
   * With `fuseMlp`: each fused MLP's backward recomputes gate and up ('on'), reads them kept from
   * the forward ('off'), or 'auto' (default): ./memory-budget.ts mlpInOps.
   */
  mlpRecompute?: MlpRecompute;
  /**
   * 'mixed' (needs `fuse`): the fused ops' GEMMs take f16 operands (passes/mixed-precision.ts, on
   * the fused forward) and the step graph gets the `loss_scale` input (dynamic loss scaling,
   * ./loss-scale.ts). Default 'fp32': the graph is unchanged.
   */
  precision?: Precision;
}

/** Models adoptExport upcast from half precision, and how (PreparedTraining.upcast). */
const upcasts = new WeakMap<Model, UpcastReport>();

/**
 * Make an exported model's parameters explicit (src/params): find them (the exporter's record, or
 * graph roles), untie initializers the exporter merged, undo folded transposes, name them by their
 * torch names, and name the loss `loss`. Changes `model`; returns what it found.
 */
export function adoptExport(model: Model): ParameterDiscovery {
  // A bfloat16 / float16 export trains as the fp32 model of the same weights (exact widening).
  const up = upcastToFloat32(model);
  if (up.from.length) upcasts.set(model, up);
  const discovery = discoverParameters(model);
  adoptParameters(model, discovery);
  nameLoss(model);
  return discovery;
}

/**
 * The training-step graph of `model` for `target` (the model itself is changed by the passes, not
 * by autodiff): fused unless `fuse` is false; for webgpu, SoftmaxCrossEntropyLoss / LogSoftmax +
 * NegativeLogLikelihoodLoss left in the forward (the unfused model, or a loss the fusion did not
 * match) are lowered BEFORE autodiff to ops ORT-web's WebGPU EP runs on the GPU, so the backward
 * is built from those ops too. Reads no weights.
 */
export function trainingGraph(model: Model, opts: TrainingGraphOptions): { train: Model; report?: PipelineReport; memory?: RecomputePlan; mixed?: { marked: number } } {
  let report: PipelineReport | undefined;
  const mixedPrecision = opts.precision === 'mixed';
  if (mixedPrecision && !opts.fuse) fail('usage', "mixed precision rounds the fused ops' GEMM operands; it needs fuse");
  const chosen = opts.parameters;
  // The trainable set (when chosen) keeps frozen weights out of stacked projections.
  if (opts.fuse) report = runPipeline(model, defaultPipeline({ mlp: opts.fuseMlp, attention: opts.fuseAttention, linear: opts.fuseLinear, stackProjections: opts.stackProjections }), { options: { training: true, ...(chosen ? { trainable: chosen } : {}) } });
  // On the fused forward, before autodiff: the gradient rules carry the attribute to the backward ops.
  const mixed = mixedPrecision ? { marked: markMixedPrecision(model, FUSED_OPS) } : undefined;
  if (opts.target === 'webgpu')
    for (const pass of [lowerSoftmaxCrossEntropyPass, nanGuardPass]) {
      const t0 = performance.now();
      const r = pass.run(model, newContext());
      report?.passes.push({ name: pass.name, modified: r.modified, counts: r.counts, ms: performance.now() - t0 });
    }
  // Unplanned, the fused MLPs' form is settled here; planned, by the planner.
  const inOps = mlpInOps(opts.mlpRecompute, false, opts.target ?? 'cpu', mixedPrecision) === 'all';
  const recompute = opts.memory ? false : opts.recompute ?? true ? { inOps } : inOps && { accept: () => false, inOps };
  const built = buildTrainingGraph(model, { ops: FUSED_OPS, recompute, trainable: chosen && ((name) => chosen.has(name)), lossScaleInput: mixedPrecision });
  // On the step graph, before the memory plan reads it (src/pipeline.ts stepPipeline).
  const step = runPipeline(built, stepPipeline());
  report?.passes.push(...step.passes);
  const memory = opts.memory && planMemory(built, { ...opts.memory, mlpRecompute: opts.mlpRecompute ?? opts.memory.mlpRecompute, mixed: mixedPrecision });
  const train = memory?.train ?? built;
  // Under a budget the webgpu lm_head kernel keeps the smaller logits tile the budgets were
  // calibrated with (custom-ops/fused-linear-cross-entropy/schema.ts GPU_CHUNK_ROWS); a chunk_size
  // already on the node stays.
  if (opts.target === 'webgpu' && opts.memory?.budget !== undefined)
    for (const n of train.graph.nodes)
      if (n.domain === ORTFUSE_DOMAIN && n.opType.startsWith('FusedLinearCrossEntropy') && !n.attrInt('chunk_size', 0)) n.setAttr(makeAttr('chunk_size', GPU_BUDGET_CHUNK_ROWS));
  ensureFunctions(train, opts.target ?? 'cpu');
  return { train, report, memory, mixed };
}

/** With `lora`, adapters are added to the adopted model (src/params/lora.ts) and only they train. */
export function prepareTraining(model: Model, opts: TrainingGraphOptions & Selection & { lora?: ResolvedLora; baseModel?: string }): PreparedTraining {
  const discovery = adoptExport(model);
  if (opts.lora && (opts.trainable?.length || opts.freeze?.length)) fail('usage', 'lora trains only the adapters: trainable/freeze (--trainable/--freeze) do not apply');
  const selected = selectParameters(discovery, opts);
  const lora = opts.lora && addLora(model, discovery, opts.lora, opts.baseModel);
  if (lora) {
    const size = (p: { shape: number[] }) => p.shape.reduce((a, b) => a * b, 1);
    selected.frozen = [...selected.frozen, ...selected.trained];
    selected.trained = lora.modules.flatMap((m) => [{ name: m.a, shape: [lora.r, m.in] }, { name: m.b, shape: [m.out, lora.r] }]).map((p) => ({ ...p, size: size(p) }));
    selected.totalFloats += selected.trained.reduce((s2, p) => s2 + p.size, 0);
  }
  const vocab = vocabSize(model);
  for (const name of ['input_ids', 'labels', 'loss'])
    if (!model.graph.findValue(name)) fail('invalid', `the model must have inputs input_ids and labels and a 'loss' value (missing '${name}')`);
  // buildTrainingGraph works on a copy: the model keeps its initializers for the initial values.
  const { train, report, memory, mixed } = trainingGraph(model, { fuse: opts.fuse, fuseMlp: opts.fuseMlp, mlpRecompute: opts.mlpRecompute, fuseAttention: opts.fuseAttention, fuseLinear: opts.fuseLinear, stackProjections: opts.stackProjections, target: opts.target, recompute: opts.recompute, memory: opts.memory, parameters: new Set(selected.trained.map((p) => p.name)), precision: opts.precision });
  const values = new Map<string, Float32Array>();
  for (const v of model.graph.initializers) if (v.initializer!.dtype === DataType.FLOAT) values.set(v.name, v.initializer!.toArray() as Float32Array);
  const sig = trainingSignature(train);
  const initial = new Map<string, Float32Array>();
  for (const p of sig.parameters) initial.set(p, values.get(p) ?? fail('invalid', `parameter '${p}' has no float32 initial value`));
  // Parameters the loss does not reach get no gradient: they count as frozen.
  const got = new Set(sig.parameters);
  const parameterReport: ParameterReport = {
    ...selected,
    trained: selected.trained.filter((p) => got.has(p.name)),
    frozen: [...selected.frozen, ...selected.trained.filter((p) => !got.has(p.name))],
  };
  parameterReport.trainedFloats = parameterReport.trained.reduce((s, p) => s + p.size, 0);
  return { train, initial, vocab, report, parameters: sig.parameters, parameterReport, discovery, lora, memory, upcast: upcasts.get(model), mixed };
}

/**
 * Whether training fuses each whole SwiGLU MLP by default: on the webgpu backend, where our GEMM
 * kernels run it (H200, 0.5B fused 8×512 with the backward keeping only x: 11.53 instead of 17.01
 * GiB by nvidia-smi, 3,170 instead of 2,972 tok/s; bench/results/memory-budget.md, call 9;
 * `--mlp-recompute off` keeps gate and up instead: ./memory-budget.ts mlpInOps); not on
 * cpu, where ORT would run the body and its recomputed gate/up GEMMs cost time (not measured there).
 */
export function defaultFuseMlp(backend: string, fuse: boolean): boolean {
  return fuse && backend === 'webgpu';
}

/**
 * Whether the projections become Linear ops when the run does not say (`--fuse-linear`): on the
 * webgpu backend, where they run on our GEMMs (f16 tensor cores in mixed precision: 0.5B 8×512
 * 5,400 → 7,820 tok/s on an H200, same call; bench/results/step-speed-h200.md, session 8) and, with
 * the attention fusion and the glue kernels, leave ORT only the embedding and position tables
 * (bench/results/step-speed-h200.md, session 9).
 */
export function defaultFuseLinear(backend: string, fuse: boolean): boolean {
  return fuse && backend === 'webgpu';
}

/**
 * Whether each layer's causal attention becomes one CausalAttention op when the run does not say
 * (`--fuse-attention`): on the webgpu backend, where it runs on our batched GEMMs (the rest of the
 * layer's ops around it then need no ORT run; bench/results/step-speed-h200.md, session 9); off on cpu (not measured there).
 */
export function defaultFuseAttention(backend: string, fuse: boolean): boolean {
  return fuse && backend === 'webgpu';
}
