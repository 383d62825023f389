/**
 * A training run on the `cpu` or `webgpu` backend: text → token batches → training steps with AdamW, with
 * validation, checkpoints and a per-step record. The CLI (`ortfuse train`) and tests drive it.
 */
import type { Model } from '../ir/graph.js';
import { batches, checkVocab, split, type Batch } from '../data/batches.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { prepareTraining, type PreparedTraining } from './session.js';
import { CpuTrainer, type StepResult, type TrainerOptions } from './trainer.js';
import type { TrainState } from './checkpoint.js';
import { fail } from '../errors.js';
import { cloneModel } from '../autodiff/clone.js';
import { saveTrainedModel, saveWeights } from '../params/export.js';
import { adoptExport } from './session.js';

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
  warmup?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  /** Validation every N steps (0 = only at the end). */
  evalEvery?: number;
  /** Validation batches per evaluation. */
  evalBatches?: number;
  checkpoint?: string;
  resume?: string;
  /** Stop (and checkpoint) after this step, keeping the schedule of `steps` (for resumable runs). */
  stopAfter?: number;
  threads?: number;
  /** cpu (default) or webgpu (onnxruntime-web's WebGPU EP; in Node on dawn.node). */
  backend?: string;
  /** Globs of parameters to train (torch names where the export records them; default all). */
  trainable?: string[];
  /** Globs of parameters to keep fixed. */
  freeze?: string[];
  /** Write the trained weights as safetensors under the torch names at the end. */
  saveWeights?: string;
  /** Write the model (the export's graph) with the trained weights as ONNX at the end. */
  saveModel?: string;
  /** webgpu: per-op policy as `--kernels` ('all', 'none', 'default', op names and op=kernel|ort|native, e.g. 'default,rmsnorm=native,rope=native'; default flce,swiglu): src/runtime/webgpu/segments.ts parseKernels. */
  kernels?: string;
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
}

export interface TrainHooks {
  onStart?(info: { parameters: number; prepared: PreparedTraining; startStep: number }): void;
  onStep?(r: StepRecord): void;
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export async function runTraining(model: Model, text: string, tok: Tokenizer, o: TrainOptions, hooks: TrainHooks = {}): Promise<StepRecord[]> {
  if (!(o.steps > 0 && o.batch > 0 && o.seq > 1)) fail('usage', `--steps, --batch must be positive and --seq at least 2 (got ${o.steps}, ${o.batch}, ${o.seq})`);
  const backend = o.backend ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'webgpu') fail('usage', `--backend ${backend}: expected one of ${BACKENDS.join(', ')}`);
  if (o.kernels !== undefined && backend !== 'webgpu') fail('usage', `--kernels is an option of --backend webgpu (got --backend ${backend})`);
  // The export's graph with torch-named parameters, kept aside (tensors shared) for --save-model.
  const forward = o.saveModel ? (adoptExport(model), cloneModel(model)) : undefined;
  const prepared = prepareTraining(model, { fuse: o.fuse, target: backend, trainable: o.trainable, freeze: o.freeze });
  const ids = tok.encode(text);
  checkVocab(ids, prepared.vocab, tok.name);
  const ds = split(ids, o.seq);
  const topts: TrainerOptions = {
    optimizer: { lr: o.lr, weightDecay: o.weightDecay ?? 0.01, maxGradNorm: o.maxGradNorm ?? 1 },
    schedule: { lr: o.lr, warmupSteps: o.warmup ?? Math.min(10, Math.floor(o.steps / 10)), totalSteps: o.steps },
    threads: o.threads,
  };
  let trainer: Trainer;
  let gpuPeak: (() => number) | undefined;
  if (backend === 'webgpu') {
    // Loaded only here: the cpu path never starts Dawn or ORT-web.
    const wg = await import('./webgpu/node.js');
    const { meter } = await wg.nodeOrtWeb();
    gpuPeak = () => meter.peak / 2 ** 20;
    // One batch shape per run: the graph is specialised to it (shape plumbing folded away).
    const policy = o.kernels === undefined ? {} : wg.parseKernels(o.kernels);
    trainer = await wg.createNodeWebGpuTrainer(prepared.train, prepared.initial, topts, policy, { batch: o.batch, seq: o.seq });
  } else trainer = await CpuTrainer.create(prepared.train, prepared.initial, topts);
  const stream = batches(ds.train, o.batch, o.seq, o.seed);
  const val: Batch[] = [];
  const vs = batches(ds.validation, o.batch, o.seq, o.seed + 1);
  for (let i = 0; i < (o.evalBatches ?? 2); i++) val.push(vs.next().value!);
  if (o.resume) {
    trainer.restore(loadCheckpoint(o.resume));
    for (let i = 0; i < trainer.step; i++) stream.next();
  }
  const nParams = [...prepared.initial.values()].reduce((s, p) => s + p.length, 0);
  hooks.onStart?.({ parameters: nParams, prepared, startStep: trainer.step });
  const records: StepRecord[] = [];
  try {
    const last = Math.min(o.steps, o.stopAfter ?? o.steps);
    while (trainer.step < last) {
      const r = await trainer.train(stream.next().value!);
      const rec: StepRecord = {
        step: r.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, ms: r.ms,
        tokensPerSecond: (o.batch * o.seq * 1000) / r.ms, peakRssMiB: peakRssMiB(),
      };
      if (gpuPeak) rec.peakGpuMiB = gpuPeak();
      if ((o.evalEvery && r.step % o.evalEvery === 0) || r.step === o.steps) rec.valLoss = await trainer.evaluate(val);
      records.push(rec);
      hooks.onStep?.(rec);
    }
    if (o.checkpoint || o.saveWeights || o.saveModel) {
      const state = await trainer.state({ seed: o.seed, batch: o.batch, seq: o.seq });
      if (o.checkpoint) saveCheckpoint(o.checkpoint, state);
      const trained = new Map([...state.params].map(([name, p]) => [name, p.value]));
      if (o.saveWeights) saveWeights(o.saveWeights, model, prepared.discovery, trained, { step: String(trainer.step) });
      if (o.saveModel) saveTrainedModel(o.saveModel, forward!, trained);
    }
  } finally {
    await trainer.release();
  }
  return records;
}
