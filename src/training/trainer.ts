/**
 * The training API: `createTrainer(model, options)` fuses an exported model (inputs input_ids and
 * labels, a `loss` output), builds its training-step graph and opens a backend trainer — `cpu`
 * (onnxruntime-node; src/runtime/trainer.ts) or `webgpu` (onnxruntime-web's WebGPU EP, in Node on
 * dawn.node; src/runtime/webgpu/) — with the same AdamW, schedule and defaults as `ortfuse train`.
 *
 * ```ts
 * const t = await createTrainer('model.onnx', { lr: 1e-4, steps: 1000 });
 * t.on('step', (r) => console.log(r.step, r.loss));
 * const data = await textBatches(text, { batch: 4, seq: 64, vocab: t.vocab });
 * for (let i = 0; i < 1000; i++) await t.step(data.train.next().value!);
 * await t.save('run.ckpt');
 * await t.dispose();
 * ```
 *
 * The backends' runtimes are imported only here, when a trainer starts (the cpu path never loads
 * Dawn or onnxruntime-web); a missing one is a one-line error naming the package (./peers.ts).
 */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { loadBytes, loadFile } from '../onnx/io.js';
import type { PipelineReport } from '../pipeline.js';
import type { Batch } from '../data/batches.js';
import { loadCheckpoint, saveCheckpoint } from '../runtime/checkpoint.js';
import { adoptExport, prepareTraining } from '../runtime/session.js';
import { budgetTrainerOptions, gradientsAppliedEarly } from '../runtime/memory-budget.js';
import { cloneModel } from '../autodiff/clone.js';
import type { ParameterDiscovery } from '../params/discover.js';
import { savedDtype, saveTrainedModel, setParameters } from '../params/export.js';
import { stateDict } from '../params/state-dict.js';
import { encodeSafetensors, type SafetensorsDtype } from '../params/safetensors-bytes.js';
import { weightsToWrite, type LoraAdapters } from '../params/lora.js';
import { adapterFiles } from '../params/adapter.js';
import { saveAdapterDir } from '../params/adapter-dir.js';
import { writeFileAtomic } from '../params/safetensors.js';
import type { ParameterReport } from '../params/select.js';
import type { Trainer as BackendTrainer } from '../runtime/train.js';
import type { MemoryMeter } from '../runtime/webgpu/memory.js';
import type { TrainerOptions } from '../runtime/trainer.js';
import { withPeers } from '../runtime/peers.js';
import { resolveOptions, type ResolvedOptions, type TrainerConfig } from './options.js';

export type { TrainerConfig } from './options.js';

/** What `step` returns and the 'step' event carries. */
export interface StepInfo {
  /** 1-based number of this optimizer step. */
  step: number;
  /** Mean loss of the batch (before the update). */
  loss: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Wall time of the step, milliseconds. */
  ms: number;
  /** Tokens of the batch per second of this step. */
  tokensPerSecond: number;
  /** Peak resident set size of this process so far, MiB. */
  peakRssMiB: number;
  /** webgpu: most GPU memory in live buffers so far (ORT's pool and ours), MiB. */
  peakGpuMiB?: number;
  /** precision 'mixed': the loss scale this step ran with. */
  lossScale?: number;
  /**
   * precision 'mixed': the gradients overflowed at lossScale, so no update was applied (webgpu with
   * clip 0: only to the parameters not yet updated when the overflow was seen) and the scale halved.
   * Always false in fp32.
   */
  skipped: boolean;
}

/** Events of a trainer and what they carry. */
export interface TrainerEvents {
  step: StepInfo;
  evaluate: { step: number; loss: number; batches: number };
  save: { step: number; file: string };
  load: { step: number; file: string };
}

/** As runTraining's record (src/runtime/train.ts, not imported: it loads onnxruntime-node); 0 in a browser. */
const peakRssMiB = () => (typeof process === 'undefined' ? 0 : process.resourceUsage().maxRSS / 1024);

/** Elements of the trained parameters. */
const count = (initial: Map<string, Float32Array>) => [...initial.values()].reduce((s, p) => s + p.length, 0);

/** Parameter shapes of a step graph, by name. */
const shapesOf = (p: { train: Model; initial: Map<string, Float32Array> }) =>
  new Map(p.train.graph.inputs.filter((v) => p.initial.has(v.name)).map((v) => [v.name, (v.tensorType?.shape ?? []) as number[]]));

type Listener<K extends keyof TrainerEvents> = (e: TrainerEvents[K]) => void;

/** A model being trained; create one with `createTrainer`. */
export class Trainer {
  private listeners = new Map<keyof TrainerEvents, Set<Listener<never>>>();
  private busy: string | undefined;
  private disposed = false;
  /** Shape of the last step (recorded in checkpoints). */
  private last: { batch?: number; seq?: number; gradAccum: number } = { gradAccum: 1 };

  private constructor(
    private readonly inner: BackendTrainer,
    /** The options in effect, every default filled in. */
    readonly options: Readonly<ResolvedOptions>,
    /** Names of the trained parameters (graph inputs of the step graph), in graph order. */
    readonly parameterNames: readonly string[],
    /** Elements of the trained parameters (parameterReport.totalFloats counts the whole model). */
    readonly parameterCount: number,
    /** Vocabulary size of the model: token ids must be below it. */
    readonly vocab: number,
    /** What the fusion passes did (undefined with `fuse: false`). */
    readonly report: PipelineReport | undefined,
    /** What trains, what is frozen, what is a buffer or constant (trainable / freeze). */
    readonly parameterReport: ParameterReport,
    private readonly discovery: ParameterDiscovery,
    /** A fresh copy of the exported model with its parameters adopted (names as parameterNames). */
    private readonly forward: () => Model,
    private readonly gpuMeter: MemoryMeter | undefined,
    /** Parameter shapes, by name. */
    private readonly shapes: Map<string, number[]>,
    /** With option lora: the adapters (modules, r, alpha, scale); parameterNames are their A and B. */
    readonly lora?: LoraAdapters,
    /** The safetensors dtype of saveWeights: the export's own (BF16 / F16 for a half model, else F32). */
    readonly weightsDtype: SafetensorsDtype = 'F32',
  ) {}

  /** @internal Use createTrainer. */
  static async open(model: Model, o: ResolvedOptions, forward: () => Model): Promise<Trainer> {
    const budget = o.memoryBudget === undefined ? undefined : { batch: o.batch!, seq: o.seq!, backend: o.backend, budget: o.memoryBudget, gradientsApplied: gradientsAppliedEarly(o.backend, o.clip, o.kernels) };
    const prepared = prepareTraining(model, { fuse: o.fuse, fuseMlp: o.fuseMlp, mlpRecompute: o.mlpRecompute, fuseAttention: o.fuseAttention, fuseLinear: o.fuseLinear, target: o.backend, trainable: o.trainable, freeze: o.freeze, lora: o.lora, memory: budget, precision: o.precision });
    const budgeted = budgetTrainerOptions(!!budget);
    const topts: TrainerOptions = {
      optimizer: { lr: o.lr, weightDecay: o.weightDecay, maxGradNorm: o.clip },
      schedule: { lr: o.lr, warmupSteps: o.warmup, totalSteps: o.steps, kind: o.schedule, minRatio: o.minLrRatio },
      threads: o.threads,
      noDecay: o.noDecay,
      inFlight: budgeted.inFlight,
      unfreedBytes: budgeted.unfreedBytes,
      bufferPool: budgeted.bufferPool,
      ortBufferCache: budgeted.ortBufferCache,
      graphCapture: o.graphCapture,
      stepReplay: o.stepReplay,
      session: { ...budgeted.session, ...o.sessionOptions } as TrainerOptions['session'],
      ...(o.precision === 'mixed' ? { lossScale: { initialScale: o.initialLossScale } } : {}),
    };
    let inner: BackendTrainer;
    let meter: MemoryMeter | undefined;
    if (o.backend === 'webgpu') {
      const browser = await import('../runtime/webgpu/browser.js');
      if (browser.notNode()) {
        // A browser: its own navigator.gpu, the page's onnxruntime-web (o.ort) or the bundled one.
        const policy = o.kernels === undefined ? {} : (await import('../runtime/webgpu/training-spec.js')).parseKernels(o.kernels);
        const shape = o.batch !== undefined && o.seq !== undefined ? { batch: o.batch, seq: o.seq } : undefined;
        const made = await browser.createBrowserWebGpuTrainer(prepared.train, prepared.initial, topts, policy, shape, o.ort as never);
        return new Trainer(made.trainer, o, prepared.parameters, count(prepared.initial), prepared.vocab, prepared.report, prepared.parameterReport, prepared.discovery, forward, made.meter, shapesOf(prepared), prepared.lora, savedDtype(prepared.upcast?.from));
      }
      inner = await withPeers('webgpu', async () => {
        const wg = await import('../runtime/webgpu/ort-web-node.js');
        const { parseKernels } = await import('../runtime/webgpu/training-spec.js');
        const policy = o.kernels === undefined ? {} : parseKernels(o.kernels);
        const shape = o.batch !== undefined && o.seq !== undefined ? { batch: o.batch, seq: o.seq } : undefined;
        // Dawn as navigator.gpu (and the memory meter) before ORT-web creates its device.
        meter = await wg.nodeWebGpu();
        // With the caller's onnxruntime-web, its env (and the GPUDevice it creates) are shared with their sessions.
        return wg.createNodeWebGpuTrainer(prepared.train, prepared.initial, topts, policy, shape, o.ort as never);
      });
    } else {
      inner = await withPeers('cpu', async () => (await import('../runtime/trainer.js')).CpuTrainer.create(prepared.train, prepared.initial, topts));
    }
    return new Trainer(inner, o, prepared.parameters, count(prepared.initial), prepared.vocab, prepared.report, prepared.parameterReport, prepared.discovery, forward, meter, shapesOf(prepared), prepared.lora, savedDtype(prepared.upcast?.from));
  }

  /** Optimizer steps taken so far (restored by `load`). */
  get globalStep(): number {
    return this.inner.step;
  }

  /** Listen to an event; returns the function that removes the listener. */
  on<K extends keyof TrainerEvents>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => this.off(event, fn);
  }

  off<K extends keyof TrainerEvents>(event: K, fn: Listener<K>): void {
    this.listeners.get(event)?.delete(fn as Listener<never>);
  }

  private emit<K extends keyof TrainerEvents>(event: K, e: TrainerEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) (fn as Listener<K>)(e);
  }

  /** One call at a time: steps share the parameters. */
  private async exclusive<T>(what: string, f: () => Promise<T>): Promise<T> {
    if (this.disposed) fail('usage', `${what}: the trainer was disposed`);
    if (this.busy) fail('usage', `${what} called while ${this.busy} is running: await each call before the next`);
    this.busy = what;
    try {
      return await f();
    } finally {
      this.busy = undefined;
    }
  }

  private checkBatch(b: Batch, what: string): void {
    if (!b || !(b.inputIds instanceof BigInt64Array) || !(b.labels instanceof BigInt64Array))
      fail('usage', `${what}: a batch is { inputIds, labels: BigInt64Array, batch, seq } (see textBatches, toBatch)`);
    const n = b.batch * b.seq;
    if (!(b.batch >= 1 && b.seq >= 2) || b.inputIds.length !== n || b.labels.length !== n)
      fail('usage', `${what}: batch ${b.batch}x${b.seq} needs ${n} input ids and labels (got ${b.inputIds.length} and ${b.labels.length})`);
    const { batch, seq } = this.options;
    if (this.options.backend === 'webgpu' && batch !== undefined && (b.batch !== batch || b.seq !== seq))
      fail('usage', `${what}: the webgpu step graph is specialised to batches of ${batch}x${seq} (options batch, seq), not ${b.batch}x${b.seq}`);
    const v = BigInt(this.vocab);
    for (let i = 0; i < n; i++) {
      const id = b.inputIds[i];
      if (id < 0n || id >= v) fail('usage', `${what}: token id ${id} at position ${i} is outside the model's vocabulary (0..${this.vocab - 1})`);
    }
  }

  /**
   * One optimizer step on `batch`: loss and gradients, clipping, AdamW; emits 'step'. An array of
   * micro-batches (cpu) accumulates their gradients first, each weighted by its count of target
   * tokens, so the step equals one step on all of them together (as `--grad-accum`).
   */
  step(batch: Batch | Batch[]): Promise<StepInfo> {
    return this.exclusive('step()', async () => {
      const what = `step ${this.inner.step + 1}`;
      const micro = Array.isArray(batch) ? batch : [batch];
      if (micro.length === 0) fail('usage', `${what}: an empty array of micro-batches`);
      if (micro.length > 1 && this.options.backend !== 'cpu') fail('usage', `${what}: micro-batches (gradient accumulation) are a feature of backend 'cpu'`);
      micro.forEach((b, i) => this.checkBatch(b, micro.length > 1 ? `${what}, micro-batch ${i}` : what));
      const r = await (micro.length > 1 ? (this.inner as unknown as { train(b: Batch[]): ReturnType<BackendTrainer['train']> }).train(micro) : this.inner.train(micro[0]));
      const tokens = micro.reduce((s, b) => s + b.batch * b.seq, 0);
      this.last = { batch: micro[0].batch, seq: micro[0].seq, gradAccum: micro.length };
      const info: StepInfo = { ...r, tokensPerSecond: (tokens * 1000) / r.ms, peakRssMiB: peakRssMiB() };
      if (this.gpuMeter) info.peakGpuMiB = this.gpuMeter.peak / 2 ** 20;
      this.emit('step', info);
      return info;
    });
  }

  /** Mean loss over `batches` without updating; emits 'evaluate'. */
  evaluate(batches: Batch[]): Promise<number> {
    return this.exclusive('evaluate()', async () => {
      if (!Array.isArray(batches) || batches.length === 0) fail('usage', 'evaluate() takes a non-empty array of batches');
      batches.forEach((b, i) => this.checkBatch(b, `evaluate() batch ${i}`));
      const loss = await this.inner.evaluate(batches);
      this.emit('evaluate', { step: this.inner.step, loss, batches: batches.length });
      return loss;
    });
  }

  /** The settings a checkpoint records (as `ortfuse train`'s: src/runtime/run-checks.ts RunSettings). */
  private settings(): Record<string, unknown> {
    const o = this.options;
    return { batch: this.last.batch ?? o.batch, seq: this.last.seq ?? o.seq, gradAccum: this.last.gradAccum, lr: o.lr, warmup: o.warmup, steps: o.steps, schedule: o.schedule, minLrRatio: o.minLrRatio, weightDecay: o.weightDecay, clip: o.clip, precision: o.precision };
  }

  /**
   * Write a checkpoint (parameters, AdamW moments, step, the optimizer settings and parameter
   * shapes; atomically: temporary file + rename), in the format of `ortfuse train --checkpoint`.
   */
  save(file: string): Promise<void> {
    return this.exclusive('save()', async () => {
      const s = await this.inner.state({});
      const params = [...s.params].map(([name, p]) => [name, this.shapes.get(name) ?? [p.value.length]]);
      saveCheckpoint(file, { ...s, meta: { backend: this.options.backend, settings: this.settings(), params } });
      this.emit('save', { step: this.inner.step, file });
    });
  }

  /**
   * Restore parameters, moments and step from a checkpoint (this API's or `ortfuse train`'s). Refused
   * in one line when it is of another model (parameter names, sizes) or was written with other
   * optimizer settings (lr, warmup, steps, schedule, minLrRatio, weightDecay, clip), under which the
   * continued run would not be the one that was saved. Batches are the caller's: not checked.
   */
  load(file: string): Promise<void> {
    return this.exclusive('load()', async () => {
      const s = loadCheckpoint(file);
      const mine = new Map(this.parameterNames.map((n) => [n, this.shapes.get(n)!.reduce((a, b) => a * b, 1)]));
      for (const [n, p] of s.params)
        if (mine.get(n) !== p.value.length) fail('usage', `load ${file}: the checkpoint is of another model (${mine.has(n) ? `parameter '${n}' has ${p.value.length} values there, ${mine.get(n)} here` : `it has parameter '${n}', which this one does not`})`);
      for (const n of mine.keys()) if (!s.params.has(n)) fail('usage', `load ${file}: the checkpoint is of another model (it has no parameter '${n}')`);
      const saved = s.meta.settings as Record<string, unknown> | undefined;
      if (saved) {
        const now = this.settings();
        // A checkpoint from before precision existed was fp32.
        const was = (k: string) => saved[k] ?? (k === 'precision' ? 'fp32' : undefined);
        const diff = ['lr', 'warmup', 'steps', 'schedule', 'minLrRatio', 'weightDecay', 'clip', 'precision'].filter((k) => was(k) !== undefined && was(k) !== now[k]);
        if (diff.length) fail('usage', `load ${file}: the checkpoint was written with ${diff.map((k) => `${k} ${was(k)}`).join(', ')}; this trainer has ${diff.map((k) => `${k} ${now[k]}`).join(', ')} (create it with the same options)`);
      }
      this.inner.restore(s);
      this.emit('load', { step: s.step, file });
    });
  }

  /** Copies of the current parameter values, by name (read back from the GPU on webgpu). */
  parameters(): Promise<Map<string, Float32Array>> {
    return this.exclusive('parameters()', async () => {
      const s = await this.inner.state({});
      return new Map([...s.params].map(([name, p]) => [name, p.value.slice()]));
    });
  }

  /**
   * The exported model (its graph as given: inputs, outputs, loss) with the trained values, e.g. for
   * `ort.InferenceSession.create(save(model))` in your own pipeline. Parameters are named as
   * `parameterNames` (torch names where the export records them). With lora: the adapters merged
   * into the base weights (W + s·B·A; the graph has no adapter nodes).
   */
  async exportModel(): Promise<Model> {
    const m = this.forward();
    return setParameters(m, weightsToWrite(this.lora, true, m, await this.parameters()));
  }

  /** Write `exportModel()` as ONNX (atomic; external data when large), as `ortfuse train --save-model` (with lora: `--merge`). */
  async saveModel(file: string): Promise<void> {
    const m = this.forward();
    saveTrainedModel(file, m, weightsToWrite(this.lora, true, m, await this.parameters()));
  }

  /**
   * Every parameter as safetensors bytes under the torch names (frozen ones with their initial
   * values), which transformers' load_state_dict / from_pretrained read. With lora the base weights
   * are written: as loaded, or with `merge: true` as W + s·B·A.
   */
  async weightsFile(opts: { merge?: boolean } = {}): Promise<Uint8Array> {
    if (opts.merge && !this.lora) fail('usage', 'weightsFile({ merge: true }): merge needs a trainer created with option lora');
    const m = this.forward();
    const values = weightsToWrite(this.lora, opts.merge ?? false, m, await this.parameters());
    // A bf16 / fp16 export gets its weights back in its own precision.
    return encodeSafetensors(stateDict(m, this.discovery, values), { format: 'pt', producer: 'ortfuse', step: String(this.inner.step) }, this.weightsDtype);
  }

  /** Write `weightsFile(opts)` to `file` (atomic), as `ortfuse train --save-weights` (and `--merge`). */
  async saveWeights(file: string, opts: { merge?: boolean } = {}): Promise<void> {
    writeFileAtomic(file, await this.weightsFile(opts));
  }

  /**
   * The LoRA adapter as PEFT's files: 'adapter_model.safetensors' (`base_model.model.<module>.lora_A.weight`
   * [r, in], `.lora_B.weight` [out, r]) and 'adapter_config.json' — what `PeftModel.from_pretrained` loads.
   */
  async adapterFiles(): Promise<Map<string, Uint8Array>> {
    if (!this.lora) fail('usage', 'adapterFiles(): the trainer has no adapters (create it with option lora)');
    return adapterFiles(this.lora, await this.parameters());
  }

  /** Node: write `adapterFiles()` into directory `dir` (created if missing), as `ortfuse train --save-adapter DIR`. */
  async saveAdapter(dir: string): Promise<void> {
    saveAdapterDir(dir, await this.adapterFiles());
  }

  /** Release the session(s) and GPU buffers; the trainer cannot be used afterwards. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    if (this.busy) fail('usage', `dispose() called while ${this.busy} is running: await it first`);
    this.disposed = true;
    await this.inner.release();
  }
}

/**
 * Create a trainer for an exported model given as a file path, bytes, or a loaded `Model` (a Model
 * is fused in place, as `optimize` does, after a copy is kept for exportModel). Options and
 * defaults are `ortfuse train`'s (./options.ts).
 */
export async function createTrainer(model: string | Uint8Array | Model, config: TrainerConfig = {}): Promise<Trainer> {
  const o = resolveOptions(config);
  const read = typeof model === 'string' ? () => loadFile(model) : model instanceof Uint8Array ? () => loadBytes(model) : undefined;
  const m = read ? read() : model;
  if (o.lora && typeof model === 'string') o.lora.baseModel ??= model.replace(/^.*[\\/]/, '').replace(/\.onnx$/, '');
  if (!m || typeof m !== 'object' || !('graph' in m)) fail('usage', `createTrainer() takes a model file path, bytes or a Model, not ${typeof model}`);
  // For exportModel/saveModel/saveWeights: read the file or bytes again then, or keep a copy of the given Model (tensor data shared).
  const adopted = (x: Model) => (adoptExport(x), x);
  let forward: () => Model;
  if (read) forward = () => adopted(read());
  else {
    const copy = cloneModel(adopted(m));
    forward = () => cloneModel(copy);
  }
  return Trainer.open(m, o, forward);
}
