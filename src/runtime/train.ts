/**
 * A training run on the `cpu` or `webgpu` backend: text → token batches → training steps with AdamW, with
 * validation, checkpoints and a per-step record. The CLI (`ortfuse train`) and tests drive it.
 *
 * Everything that can be checked is checked before the first step (./run-checks.ts: option
 * ranges, the checkpoint to resume; ./model-limits.ts: batch shapes the model records;
 * ./memory-estimate.ts: the step against the machine's memory or the adapter's largest buffer).
 * A run stops early, with a checkpoint, when `hooks.stopRequested` says so (signals), at
 * `maxTimeMs`, or (cpu) when the loss or a gradient turns NaN/Inf (the state before that step).
 * With `precision: 'mixed'` a non-finite gradient is an overflow of the loss scale: the step is
 * skipped and the scale halved (./loss-scale.ts); only a non-finite loss, or the scale falling
 * under its floor, stops the run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Model } from '../ir/graph.js';
import { batches, checkVocab, split, type Batch } from '../data/batches.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { fail, OrtfuseError } from '../errors.js';
import { loadCheckpoint, readCheckpointHeader } from './checkpoint.js';
import type { TrainState } from './checkpoint.js';
import { cloneModel } from '../autodiff/clone.js';
import { savedDtype, saveTrainedModel, saveWeights } from '../params/export.js';
import { weightsToWrite } from '../params/lora.js';
import type { ResolvedLora } from '../params/lora-config.js';
import { adapterFiles } from '../params/adapter.js';
import { saveAdapterDir } from '../params/adapter-dir.js';
import { adoptExport } from './session.js';
import { CheckpointFiles } from './checkpoint-files.js';
import { gib, largestFitting, memoryLimit, stepMemoryModel, type StepMemory } from './memory-estimate.js';
import { checkBatchShape, checkNotTrainingGraph } from './model-limits.js';
import type { ScheduleKind } from './optimizer.js';
import { checkOptions, checkResume, checkResumeModel, runSettings, type ParamShapes } from './run-checks.js';
import { defaultFuseAttention, defaultFuseLinear, defaultFuseMlp, prepareTraining, vocabSize, type PreparedTraining } from './session.js';
import { FUSED_OPS } from '../../custom-ops/registry.js';
import type { CpuTrainer, StepResult, TrainerOptions } from './trainer.js';
import { withPeers } from './peers.js';
import { budgetTrainerOptions, gradientsAppliedEarly, type MlpRecompute } from './memory-budget.js';
import { DEFAULT_LOSS_SCALE, type Precision } from './loss-scale.js';

/** What runTraining needs of a backend's trainer (CpuTrainer, WebGpuTrainer). */
export interface Trainer {
  step: number;
  train(batch: Batch): Promise<StepResult>;
  evaluate(batches: Batch[]): Promise<number>;
  state(meta: Record<string, unknown>): TrainState | Promise<TrainState>;
  restore(s: TrainState): void;
  release(): Promise<void>;
}

/** Backends of `ortfuse train`. */
export const BACKENDS = ['cpu', 'webgpu'] as const;

export interface TrainOptions {
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
  fuse: boolean;
  /** With `fuse`: each whole SwiGLU MLP as one op (`--fuse-mlp`; default: on webgpu, see defaultFuseMlp). */
  fuseMlp?: boolean;
  /** With `fuse`: each remaining projection by a parameter (the attention's q, k, v, o) as one Linear op (`--fuse-linear`; default: on webgpu, see defaultFuseLinear). */
  fuseLinear?: boolean;
  /** With the fused projections: those that read one input (q, k, v) stacked into one Linear (`--stack-projections`; passes/stack-projections.ts; default off until measured). */
  stackProjections?: boolean;
  /** With the fused MLP: whether its backward recomputes gate and up (`--mlp-recompute`; default 'auto': src/runtime/memory-budget.ts mlpInOps). */
  mlpRecompute?: MlpRecompute;
  /** With `fuse`: each layer's causal attention as one op (`--fuse-attention`; default: on webgpu, see defaultFuseAttention). */
  fuseAttention?: boolean;
  /**
   * `--precision`: 'fp32' (default) or 'mixed' (needs `fuse`): f16 GEMM operands in the fused MLP
   * and linear-CE ops, fp32 master weights and AdamW, dynamic loss scaling (./loss-scale.ts).
   */
  precision?: Precision;
  /** With precision 'mixed': the loss scale of the first step (`--initial-loss-scale`; default 2^16). */
  initialLossScale?: number;
  warmup?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  /** Decay after the warm-up (default cosine) and the final lr as a fraction of `lr` (default 0.1). */
  schedule?: ScheduleKind;
  minLrRatio?: number;
  /** Micro-batches of `batch` sequences per optimizer step (default 1; cpu backend). */
  gradAccum?: number;
  /** Validation every N steps (0 = only at the end). */
  evalEvery?: number;
  /** Validation batches per evaluation. */
  evalBatches?: number;
  /** Validation text (default: the held-out last 5% of the training text). */
  evalText?: string;
  checkpoint?: string;
  /** Write `checkpoint` every N steps (0 = at the end and when stopped early). */
  saveEvery?: number;
  /** Keep the last K periodic checkpoints as <stem>.step-NNNNNN<ext> (./checkpoint-files.ts). */
  keepLast?: number;
  /** Where to save when the run stops early without `checkpoint` (called only then). */
  fallbackCheckpoint?: () => string;
  resume?: string;
  /** Stop (and checkpoint) after this step, keeping the schedule of `steps` (for resumable runs). */
  stopAfter?: number;
  /** Stop cleanly, with a checkpoint, once a step ends this many ms after the first began. */
  maxTimeMs?: number;
  threads?: number;
  /** cpu (default) or webgpu (onnxruntime-web's WebGPU EP; in Node on dawn.node). */
  backend?: string;
  /** Globs of parameters to train (torch names where the export records them; default all). */
  trainable?: string[];
  /** Globs of parameters to keep fixed. */
  freeze?: string[];
  /** Write the trained weights as safetensors under the torch names at the end. */
  saveWeights?: string;
  /** Write the model (the export's graph) with the trained weights as ONNX at the end (with lora: merged). */
  saveModel?: string;
  /** Train LoRA adapters on a frozen model (src/params/lora.ts). */
  lora?: ResolvedLora;
  /** With lora: write the adapter (PEFT's two files) into this directory at the end. */
  saveAdapter?: string;
  /** With lora: --save-weights writes W + s·B·A instead of the base weights. */
  merge?: boolean;
  /** webgpu: per-op policy as `--kernels` ('all', 'none', 'default', op names and op=kernel|ort|native, e.g. 'default,rmsnorm=native,rope=native'; default flce,swiglu): src/runtime/webgpu/policy.ts parseKernels. */
  kernels?: string;
  /** Refuse a batch shape whose step is estimated not to fit (default true). */
  checkMemory?: boolean;
  /**
   * Bytes one step may use (cpu: peak RSS; webgpu: live GPU buffers): the backward's recomputation
   * is planned to fit (src/autodiff/recompute-plan.ts), or the run is refused before it starts.
   */
  memoryBudget?: number;
  /** webgpu: run the segments that read no host input as ORT-web graph captures (TrainerOptions.graphCapture). */
  graphCapture?: boolean;
  /** webgpu: replay recorded steps (TrainerOptions.stepReplay; default true). */
  stepReplay?: boolean;
}

export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  ms: number;
  tokensPerSecond: number;
  /** Peak resident set size of this process so far, MiB. */
  peakRssMiB: number;
  valLoss?: number;
  /** webgpu: most GPU memory in live buffers so far (ORT's pool and ours), MiB. */
  peakGpuMiB?: number;
  /** Mixed precision: the loss scale of this step. */
  lossScale?: number;
  /** Mixed precision: the gradients overflowed at lossScale, so the step applied no update (StepResult.skipped). */
  skipped?: boolean;
}

/** What runs the steps, for the header. */
export interface BackendInfo {
  name: string;
  /** 'onnxruntime-node CPU EP', or the WebGPU adapter's name. */
  device: string;
  /** webgpu: a software adapter (SwiftShader, llvmpipe, ...), far slower than the cpu backend. */
  software?: boolean;
  precision: Precision;
  /** Mixed precision: fused ops marked for f16 GEMM operands, the first step's loss scale and (webgpu) where their GEMMs run. */
  mixed?: { marked: number; initialScale: number; gemm?: string };
  /** webgpu with graph capture: ORT segments run as captures, of all segments. */
  captured?: { segments: number; of: number };
}

/** Why and where a run stopped before its last step. */
export interface StopInfo {
  /** 'SIGINT', 'SIGTERM', 'max-time', ... */
  reason: string;
  step: number;
  checkpoint: string;
}

export interface TrainHooks {
  onStart?(info: { parameters: number; prepared: PreparedTraining; startStep: number; backend: BackendInfo; memory: StepMemory }): void;
  onStep?(r: StepRecord): void;
  /** Asked after every step: a reason to stop now (e.g. 'SIGINT'), or undefined to go on. */
  stopRequested?(): string | undefined;
  /** The run stopped early (stopRequested, maxTimeMs) after writing a checkpoint. */
  onStop?(s: StopInfo): void;
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function cgroupMemoryMax(): string | undefined {
  try {
    return fs.readFileSync('/sys/fs/cgroup/memory.max', 'utf8');
  } catch {
    return undefined;
  }
}

/** Refuse a step that cannot fit: over the machine's memory (cpu) or the adapter's largest buffer (webgpu). */
function checkMemory(prepared: PreparedTraining, o: TrainOptions, nParams: number, maxBuffer?: { bytes: number; adapter: string }): StepMemory {
  const m = stepMemoryModel(prepared.train.graph, nParams, FUSED_OPS);
  const accum = (o.gradAccum ?? 1) > 1 ? 4 * nParams : 0;
  const est = m.at(o.batch, o.seq);
  const shape = `--batch ${o.batch} --seq ${o.seq}`;
  const hint = (fits: (e: StepMemory) => boolean) => {
    const f = largestFitting(m, o.batch, o.seq, fits);
    return f ? `the largest batch shape that fits is --batch ${f.batch} --seq ${f.seq}` : 'not even --batch 1 --seq 2 fits';
  };
  if (o.checkMemory === false) return est;
  if (maxBuffer) {
    if (est.largest.bytes > maxBuffer.bytes)
      fail('resources', `${shape}: the step's largest tensor (${est.largest.what}) needs ${gib(est.largest.bytes)}, more than the largest buffer of the adapter ${maxBuffer.adapter} (${gib(maxBuffer.bytes)}); ${hint((e) => e.largest.bytes <= maxBuffer.bytes)}`);
    return est;
  }
  const limit = memoryLimit(os.totalmem(), cgroupMemoryMax());
  if (est.bytes + accum > limit)
    fail('resources', `${shape}: the step needs about ${gib(est.bytes + accum)} (an estimate: parameters, gradients, AdamW moments and the activations of the batch), more than this machine's ${gib(limit)}; ${hint((e) => e.bytes + accum <= limit)}`);
  return est;
}

export async function runTraining(model: Model, text: string, tok: Tokenizer, o: TrainOptions, hooks: TrainHooks = {}): Promise<StepRecord[]> {
  const backend = o.backend ?? 'cpu';
  const accum = o.gradAccum ?? 1;
  if (backend !== 'cpu' && backend !== 'webgpu') fail('usage', `--backend ${backend}: expected one of ${BACKENDS.join(', ')}`);
  if (o.kernels !== undefined && backend !== 'webgpu') fail('usage', `--kernels is an option of --backend webgpu (got --backend ${backend})`);
  if (o.graphCapture && backend !== 'webgpu') fail('usage', `--graph-capture is an option of --backend webgpu (got --backend ${backend})`);
  if (o.stepReplay === false && backend !== 'webgpu') fail('usage', `--no-step-replay is an option of --backend webgpu (got --backend ${backend})`);
  if (o.graphCapture && o.memoryBudget !== undefined) fail('usage', '--graph-capture keeps every intermediate of the captured segments allocated: it does not combine with --memory-budget');
  if (o.graphCapture && o.kernels !== undefined && !Object.values((await import('./webgpu/training-spec.js')).parseKernels(o.kernels)).includes('kernel'))
    fail('usage', `--graph-capture captures the ORT segments between ortfuse's kernels: --kernels ${o.kernels} runs none (use the default or name one, e.g. flce)`);
  if (accum > 1 && backend !== 'cpu') fail('usage', `--grad-accum is an option of --backend cpu (got --backend ${backend})`);
  checkOptions(o);
  if ((o.saveEvery || o.keepLast) && !o.checkpoint) fail('usage', '--save-every and --keep-last need --checkpoint FILE');
  const settings = runSettings(o);
  const resumed = o.resume ? readCheckpointHeader(o.resume) : undefined;
  if (resumed) checkResume(o.resume!, resumed, settings);
  checkNotTrainingGraph(model);
  checkBatchShape(model, o.batch, o.seq);
  // Data before the graph: a text too short or out of vocabulary fails here, in seconds.
  const vocab = vocabSize(model);
  const ids = tok.encode(text);
  checkVocab(ids, vocab, tok.name);
  let train: number[], validation: number[];
  if (o.evalText !== undefined) {
    validation = tok.encode(o.evalText);
    checkVocab(validation, vocab, tok.name);
    if (validation.length < o.seq) fail('usage', `--eval-text has ${validation.length} tokens; at least --seq ${o.seq} are needed for one validation window`);
    if (ids.length < o.seq) fail('usage', `the text has ${ids.length} tokens; at least --seq ${o.seq} are needed for one training window`);
    train = ids;
  } else ({ train, validation } = split(ids, o.seq));

  // The export's graph with torch-named parameters, kept aside (tensors shared) for --save-model.
  const forward = o.saveModel ? (adoptExport(model), cloneModel(model)) : undefined;
  const gradientsApplied = gradientsAppliedEarly(backend, settings.clip, o.kernels);
  const memoryRequest = { batch: o.batch, seq: o.seq, backend, budget: o.memoryBudget, gradientsApplied } as const;
  const fuseMlp = o.fuseMlp ?? defaultFuseMlp(backend, o.fuse);
  if (o.mlpRecompute !== undefined && o.mlpRecompute !== 'auto' && !(fuseMlp && o.fuse))
    fail('usage', `--mlp-recompute ${o.mlpRecompute} acts on the fused MLP, which this run does not use (${o.fuse ? `--fuse-mlp is off${backend === 'cpu' ? ' by default on cpu' : ''}` : '--no-fuse'})`);
  if (o.fuseLinear && !o.fuse) fail('usage', '--fuse-linear needs the fusions (it is one of the fusion passes): drop --no-fuse');
  const precision = o.precision ?? 'fp32';
  const fuseLinear = o.fuseLinear ?? defaultFuseLinear(backend, o.fuse);
  const fuseAttention = o.fuseAttention ?? defaultFuseAttention(backend, o.fuse);
  if (o.stackProjections && !fuseLinear) fail('usage', `--stack-projections stacks the fused projections, which this run does not fuse (${o.fuse ? '--fuse-linear is off' : '--no-fuse'})`);
  const prepared = prepareTraining(model, { fuse: o.fuse, fuseMlp, mlpRecompute: o.mlpRecompute, fuseAttention, fuseLinear, stackProjections: o.stackProjections, target: backend, trainable: o.trainable, freeze: o.freeze, lora: o.lora, memory: memoryRequest, precision });
  const nParams = [...prepared.initial.values()].reduce((s, p) => s + p.length, 0);
  const shapes: ParamShapes = prepared.train.graph.inputs
    .filter((v) => prepared.initial.has(v.name))
    .map((v) => [v.name, (v.tensorType?.shape ?? []) as number[]]);
  if (resumed) checkResumeModel(o.resume!, resumed, shapes);
  let memory = backend === 'cpu' ? checkMemory(prepared, o, nParams) : undefined;
  const topts: TrainerOptions = {
    optimizer: { lr: o.lr, weightDecay: settings.weightDecay, maxGradNorm: settings.clip },
    schedule: { lr: o.lr, warmupSteps: settings.warmup, totalSteps: o.steps, kind: settings.schedule, minRatio: settings.minLrRatio },
    threads: o.threads,
    ...budgetTrainerOptions(o.memoryBudget !== undefined),
    graphCapture: o.graphCapture,
    stepReplay: o.stepReplay,
    ...(precision === 'mixed' ? { lossScale: { initialScale: o.initialLossScale } } : {}),
  };
  const mixed = prepared.mixed && { marked: prepared.mixed.marked, initialScale: o.initialLossScale ?? DEFAULT_LOSS_SCALE };
  let trainer: Trainer;
  let gpuPeak: (() => number) | undefined;
  let info: BackendInfo;
  if (backend === 'webgpu') {
    // Loaded only here: the cpu path never starts Dawn or ORT-web.
    const wg = await import('./webgpu/ort-web-node.js');
    const { parseKernels } = await import('./webgpu/training-spec.js');
    const { ortWebGpuSummary } = await import('./webgpu/adapter.js');
    const { ort, meter } = await wg.nodeOrtWeb({ f16Matrix: precision === 'mixed' });
    gpuPeak = () => meter.peak / 2 ** 20;
    const adapter = await ortWebGpuSummary(ort);
    info = { name: 'webgpu', device: adapter.name, software: adapter.software, precision, mixed };
    // Before the graph is specialised to the batch shape (which folds [T, T] masks into constants).
    memory = checkMemory(prepared, o, nParams, { bytes: adapter.maxBufferBytes, adapter: adapter.name });
    if (adapter.software) checkMemory(prepared, o, nParams); // a software adapter's buffers are host memory
    // One batch shape per run: the graph is specialised to it (shape plumbing folded away).
    const policy = o.kernels === undefined ? {} : parseKernels(o.kernels);
    const t = await wg.createNodeWebGpuTrainer(prepared.train, prepared.initial, topts, policy, { batch: o.batch, seq: o.seq });
    const { StagedSteps } = await import('./webgpu/steps.js');
    if (o.graphCapture && t.runner instanceof StagedSteps) info.captured = { segments: t.runner.capture?.segments.size ?? 0, of: t.runner.segmentCount };
    if (info.mixed && t.mixedGemm) info.mixed.gemm = t.mixedGemm;
    trainer = t;
  } else {
    // Loaded only here: optimize/inspect and the webgpu backend run without onnxruntime-node.
    const { CpuTrainer } = await withPeers('cpu', () => import('./trainer.js'));
    trainer = await CpuTrainer.create(prepared.train, prepared.initial, topts);
    info = { name: 'cpu', device: 'onnxruntime-node CPU EP', precision, mixed };
  }
  const stream = batches(train, o.batch, o.seq, o.seed);
  const next = (): Batch[] => Array.from({ length: accum }, () => stream.next().value!);
  const val: Batch[] = [];
  const vs = batches(validation, o.batch, o.seq, o.seed + 1);
  for (let i = 0; i < (o.evalBatches ?? 2); i++) val.push(vs.next().value!);
  const records: StepRecord[] = [];
  try {
    if (o.resume) {
      trainer.restore(loadCheckpoint(o.resume));
      for (let i = 0; i < trainer.step * accum; i++) stream.next();
    }
    hooks.onStart?.({ parameters: nParams, prepared, startStep: trainer.step, backend: info, memory: memory! });
    const meta = () => ({ seed: o.seed, batch: o.batch, seq: o.seq, settings, params: shapes });
    const files = o.checkpoint ? new CheckpointFiles(o.checkpoint, o.keepLast ?? 0) : undefined;
    const last = Math.min(o.steps, o.stopAfter ?? o.steps);
    const t0 = performance.now();
    while (trainer.step < last) {
      let r: StepResult;
      try {
        r = await (accum > 1 ? (trainer as CpuTrainer).train(next()) : trainer.train(next()[0]));
      } catch (e) {
        throw await diverged(e, backend, trainer, meta, files, o);
      }
      const rec: StepRecord = {
        step: r.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, ms: r.ms,
        tokensPerSecond: (accum * o.batch * o.seq * 1000) / r.ms, peakRssMiB: peakRssMiB(),
      };
      if (r.lossScale !== undefined) (rec.lossScale = r.lossScale), (rec.skipped = r.skipped);
      if (gpuPeak) rec.peakGpuMiB = gpuPeak();
      if ((o.evalEvery && r.step % o.evalEvery === 0) || r.step === o.steps) rec.valLoss = await trainer.evaluate(val);
      records.push(rec);
      hooks.onStep?.(rec);
      if (trainer.step >= last) break;
      const stop = hooks.stopRequested?.() ?? (o.maxTimeMs !== undefined && performance.now() - t0 >= o.maxTimeMs ? 'max-time' : undefined);
      if (stop) {
        const f = files ?? new CheckpointFiles(o.fallbackCheckpoint?.() ?? fail('usage', `the run stopped (${stop}) at step ${trainer.step} with nowhere to save (no --checkpoint)`));
        f.save(await trainer.state(meta()));
        hooks.onStop?.({ reason: stop, step: trainer.step, checkpoint: f.file });
        return records;
      }
      if (files && o.saveEvery && trainer.step % o.saveEvery === 0) files.save(await trainer.state(meta()), true);
    }
    if (files || o.saveWeights || o.saveModel || o.saveAdapter) {
      const state = await trainer.state(meta());
      if (files) files.save(state);
      const trained = new Map([...state.params].map(([name, p]) => [name, p.value]));
      // With lora, `model` holds the adapters' nodes and the base weights under their torch names.
      // A bf16 / fp16 export gets its weights back in its own precision.
      if (o.saveWeights) saveWeights(o.saveWeights, model, prepared.discovery, weightsToWrite(prepared.lora, o.merge ?? false, model, trained), { step: String(trainer.step) }, savedDtype(prepared.upcast?.from));
      if (o.saveModel) saveTrainedModel(o.saveModel, forward!, weightsToWrite(prepared.lora, true, model, trained));
      if (o.saveAdapter && prepared.lora) saveAdapterDir(o.saveAdapter, adapterFiles(prepared.lora, trained));
    }
  } finally {
    await trainer.release();
  }
  return records;
}

/**
 * The error to raise for a failed step: a NaN/Inf ('diverged') on the cpu backend saves the state
 * before that step (the update was not applied) and says where; webgpu had already updated.
 */
async function diverged(e: unknown, backend: string, trainer: Trainer, meta: () => Record<string, unknown>, files: CheckpointFiles | undefined, o: TrainOptions): Promise<unknown> {
  if (!(e instanceof OrtfuseError) || e.code !== 'diverged') return e;
  if (backend !== 'cpu' || trainer.step === 0) {
    // Mixed precision's loss scale under its floor: the overflowing steps were skipped, not applied.
    const why = trainer.step === 0 ? 'no step completed'
      : e.message.includes('loss scale') ? 'the overflowing steps were skipped, but the webgpu backend writes no checkpoint after a divergence'
      : 'the webgpu update had already run';
    return new OrtfuseError('diverged', `${e.message}; no checkpoint written (${why}); try a lower --lr`, { cause: e });
  }
  const f = files ?? (o.fallbackCheckpoint ? new CheckpointFiles(o.fallbackCheckpoint()) : undefined);
  if (!f) return new OrtfuseError('diverged', `${e.message}; try a lower --lr`, { cause: e });
  f.save(await trainer.state(meta()));
  return new OrtfuseError('diverged', `${e.message}; the state after step ${trainer.step} is saved in ${f.file}; try a lower --lr`, { cause: e });
}
