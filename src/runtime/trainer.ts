/**
 * The `cpu` backend trainer: one onnxruntime-node session runs the training-step graph
 * (parameters, input_ids, labels → loss, grad.<param>), and AdamW updates the host copies of the
 * parameters and moments between steps.
 */
import * as ort from 'onnxruntime-node';
import { fail, OrtfuseError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { saveBytes } from '../onnx/io.js';
import { DataType } from '../onnx/schema.js';
import type { Batch } from '../data/batches.js';
import { adamwStep, globalNorm, learningRate, scaleGradients, type AdamWOptions, type ParamState, type ScheduleOptions } from './optimizer.js';
import type { TrainState } from './checkpoint.js';
import { GRAD_PREFIX, LOSS_SCALE } from '../autodiff/names.js';
import { lossScalerFor, type LossScaleOptions, type LossScaler } from './loss-scale.js';
import { NO_CSE_SESSION_CONFIG } from '../autodiff/recompute.js';

/** Gradient outputs are named `grad.<parameter name>` (src/autodiff/names.ts). */
export { GRAD_PREFIX };

export interface TrainerOptions {
  optimizer: AdamWOptions;
  schedule: ScheduleOptions;
  /** Parameters that get no weight decay (default: 1-D parameters: norm weights and biases). */
  noDecay?: (name: string, dims: number[]) => boolean;
  /** ORT intra-op threads (default: ORT's choice). */
  threads?: number;
  /** Extra onnxruntime-node session options (e.g. { enableMemPattern: false } for big models). */
  session?: ort.InferenceSession.SessionOptions;
  /**
   * Dynamic loss scaling (./loss-scale.ts) of a training graph with the `loss_scale` input
   * (mixed precision; such a graph always scales, with these defaults when unset). A graph
   * without that input (fp32) must not be given this.
   */
  lossScale?: LossScaleOptions;
  /**
   * cpu: the step's gradients are pre-allocated outputs that ORT writes into (one Float32Array per
   * parameter for the trainer's life) instead of tensors ORT allocates. Off by default: onnxruntime-node
   * 1.30 still returns a copy of each, so the peak grows (0.5B 8×512: 15.74 → 16.83 GiB RSS;
   * bench/results/memory-budget.md).
   */
  preallocateGradients?: boolean;
  /** webgpu stage plan: submissions the host may run ahead of the GPU (0 = no bound, the default; src/runtime/webgpu/host-ahead.ts inFlight). */
  inFlight?: number;
  /**
   * webgpu stage plan: bytes of released buffers the host may leave for Dawn to free while the GPU
   * still runs earlier work (0 = no bound; src/runtime/webgpu/host-ahead.ts unfreedBytes).
   */
  unfreedBytes?: number;
  /**
   * webgpu: bytes of our kernels' released buffers kept for reuse by size (src/webgpu/context.ts
   * poolBytes; default DEFAULT_POOL_BYTES of src/runtime/webgpu/trainer.ts; 0 = destroy them;
   * off under graph capture).
   */
  bufferPool?: number;
  /**
   * webgpu: ORT-web's storage buffer cache (WebGPU EP storageBufferCacheMode): 'simple' (the
   * default) keeps released buffers for reuse by exact size, 'bucket' (ORT's own default, and under
   * a memory budget) rounds sizes up to buckets and destroys what does not fit one — on the H200,
   * 0.5B 8×1024 budget-free ran 6,170 tok/s with 'simple' against 2,813 with 'bucket' (the host
   * waited on Dawn to free ORT's [8, 14, 1024, 1024] intermediates 144 times a run), 15.31 vs 14.73
   * GiB (bench/results/memory-budget.md, session 7, call 7). A TrainingSpec's bufferCache wins.
   */
  ortBufferCache?: 'disabled' | 'lazyRelease' | 'simple' | 'bucket';
  /**
   * webgpu stage plan of a graph specialised to one batch shape: run the segments that read no
   * host input with ORT-web's graph capture (src/runtime/webgpu/capture.ts).
   */
  graphCapture?: boolean;
  /**
   * webgpu stage plan whose GPU work is all ours (the default plan): once two consecutive steps of
   * a batch shape recorded the same commands, later steps replay them instead of running the
   * kernels' host code again (src/webgpu/step-tape.ts). Default true; false records every step.
   */
  stepReplay?: boolean;
}

/** The label a loss ignores (torch's and ONNX's default ignore_index). */
export const IGNORE_INDEX = -100n;

/**
 * Target tokens a batch's mean loss runs over: labels[b, t] other than IGNORE_INDEX for t >= 1
 * (the model shifts labels by one, as Hugging Face causal-LM heads and their exports do).
 */
export function targetTokens(b: Batch): number {
  let n = 0;
  for (let r = 0; r < b.batch; r++) for (let t = 1; t < b.seq; t++) if (b.labels[r * b.seq + t] !== IGNORE_INDEX) n++;
  return n;
}

export interface StepResult {
  step: number;
  loss: number;
  /** Global L2 norm of the (unscaled) gradients before clipping; not finite on a skipped step. */
  gradNorm: number;
  lr: number;
  ms: number;
  /** Mixed precision: the loss scale this step ran with (the next step's may differ). */
  lossScale?: number;
  /**
   * Mixed precision: the gradients were not finite, so the step applied no update (webgpu without
   * clipping: only to the parameters whose gradient was not final before the overflow; see
   * WebGpuTrainer.train) and the loss scale was halved. Always false in fp32.
   */
  skipped: boolean;
}


export class CpuTrainer {
  step = 0;
  /** AdamW's t: updates applied (steps skipped by loss scaling do not count; else = step). */
  updates = 0;
  private constructor(
    private session: ort.InferenceSession,
    readonly params: Map<string, ParamState>,
    private dims: Map<string, number[]>,
    private opts: TrainerOptions,
    /** With opts.preallocateGradients: what ORT writes each gradient into, by parameter name. */
    private readonly gradBuffers?: Map<string, Float32Array>,
    /** Mixed precision (the graph has the loss_scale input): the dynamic loss scale. */
    readonly scaler?: LossScaler,
  ) {}

  /**
   * Create a trainer for a training-step model. `initial` gives each parameter's starting
   * values (float32, in the layout of the parameter's graph input).
   */
  static async create(train: Model, initial: Map<string, Float32Array>, opts: TrainerOptions): Promise<CpuTrainer> {
    const params = new Map<string, ParamState>();
    const dims = new Map<string, number[]>();
    const gradNames = new Set(train.graph.outputs.map((v) => v.name).filter((n) => n.startsWith(GRAD_PREFIX)));
    for (const v of train.graph.inputs) {
      if (v.name === 'input_ids' || v.name === 'labels' || v.name === LOSS_SCALE) continue;
      const t = v.tensorType;
      if (!t || t.elemType !== DataType.FLOAT) fail('unsupported', `training input '${v.name}' must be float32 (got ${t ? t.elemType : 'unknown'})`);
      const shape = t.shape ?? [];
      if (shape.some((d) => typeof d !== 'number')) fail('unsupported', `parameter '${v.name}' has a non-static shape`);
      const value = initial.get(v.name);
      if (!value) fail('invalid', `no initial value for parameter '${v.name}'`);
      const n = (shape as number[]).reduce((a, b) => a * b, 1);
      if (value.length !== n) fail('invalid', `parameter '${v.name}': ${value.length} values for shape [${shape}]`);
      dims.set(v.name, shape as number[]);
      const noDecay = (opts.noDecay ?? ((_, d) => d.length <= 1))(v.name, shape as number[]);
      params.set(v.name, { value, m: new Float32Array(n), v: new Float32Array(n), noDecay });
      if (!gradNames.has(GRAD_PREFIX + v.name)) params.get(v.name)!.noDecay = true;
    }
    // Recomputed backward values must not be merged back into the forward ones (src/autodiff/recompute.ts).
    // enableMemPattern off: with it ORT allocates one block for the planned peak on the second run, on
    // top of the first run's arena (the 0.5B step at 8×256 then outgrows 24 GB; bench/results/train-step-0.5b.md).
    // Fatal-only native log: failures reach the user as one line through the thrown error.
    const scaler = lossScalerFor(train.graph.inputs.map((v) => v.name), opts.lossScale);
    const so: ort.InferenceSession.SessionOptions = { logSeverityLevel: 4, enableMemPattern: false, extra: NO_CSE_SESSION_CONFIG, ...opts.session };
    if (opts.threads) so.intraOpNumThreads = opts.threads;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(saveBytes(train), so);
    } catch (e) {
      return fail('runtime', `onnxruntime-node refused the training graph: ${(e as Error).message.split('\n')[0]}`, e);
    }
    const gradBuffers = opts.preallocateGradients ? new Map([...params].filter(([n]) => gradNames.has(GRAD_PREFIX + n)).map(([n, p]) => [n, new Float32Array(p.value.length)])) : undefined;
    return new CpuTrainer(session, params, dims, opts, gradBuffers, scaler);
  }

  private feeds(batch: Batch): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', batch.inputIds, [batch.batch, batch.seq]),
      labels: new ort.Tensor('int64', batch.labels, [batch.batch, batch.seq]),
    };
    for (const [name, p] of this.params) feeds[name] = new ort.Tensor('float32', p.value, this.dims.get(name)!);
    if (this.scaler) feeds[LOSS_SCALE] = new ort.Tensor('float32', Float32Array.of(this.scaler.scale), []);
    return feeds;
  }

  /**
   * Loss and gradients for one batch, without updating (fp32: NaN/Inf reported with the tensor's
   * name; mixed: the gradients are unscaled, and may hold Inf or NaN where the scaled ones overflowed).
   */
  async lossAndGrads(batch: Batch): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    return this.unscaled(await this.run(batch));
  }

  /** Mixed precision: the gradients times 1/S, in place. */
  private unscaled<T extends { grads: Map<string, Float32Array> }>(r: T): T {
    if (this.scaler) scaleGradients(r.grads.values(), this.scaler.inverse);
    return r;
  }

  /**
   * One session run. `into`: the gradients go into these arrays (pre-allocated outputs, by
   * parameter name) and the result holds them; the copies onnxruntime-node 1.30 still returns for
   * pre-allocated outputs are dropped at once.
   */
  private async run(batch: Batch, into?: Map<string, Float32Array>): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      const fetches = into && Object.fromEntries(this.session.outputNames.map((n) => {
        const a = into.get(n.slice(GRAD_PREFIX.length));
        return [n, n.startsWith(GRAD_PREFIX) && a ? new ort.Tensor('float32', a, this.dims.get(n.slice(GRAD_PREFIX.length))!) : null];
      }));
      out = await (fetches ? this.session.run(this.feeds(batch), fetches) : this.session.run(this.feeds(batch)));
    } catch (e) {
      return fail('runtime', `step ${this.step + 1}: onnxruntime failed: ${(e as Error).message.split('\n')[0]}`, e);
    }
    const loss = Number((out.loss as ort.Tensor).data[0]);
    if (!Number.isFinite(loss)) throw new OrtfuseError('diverged', `step ${this.step + 1}: the loss is ${loss}`);
    const grads = new Map<string, Float32Array>();
    for (const name of this.params.keys()) {
      const g = out[GRAD_PREFIX + name] as ort.Tensor | undefined;
      if (!g) continue;
      const data = into?.get(name) ?? (g.data as Float32Array);
      // Mixed precision: an overflow of the scaled gradients skips the step (train), it does not fail.
      if (!this.scaler)
        for (let i = 0; i < data.length; i++)
          if (!Number.isFinite(data[i])) throw new OrtfuseError('diverged', `step ${this.step + 1}: the gradient of '${name}' has ${data[i]} at index ${i}`);
      grads.set(name, data);
    }
    return { loss, grads };
  }

  /**
   * Loss and gradients of one step made of micro-batches (gradient accumulation): each micro-batch's
   * mean loss and gradient weighted by its count of target tokens (`targetTokens`), so the result
   * is the mean over all their target tokens, as for the concatenated batch. One micro-batch: as
   * lossAndGrads.
   */
  async accumulate(micro: Batch[]): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    return this.unscaled(await this.sum(micro));
  }

  /** As accumulate, the gradients still scaled (mixed precision: by S). */
  private async sum(micro: Batch[]): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    if (micro.length === 1) return this.run(micro[0]);
    const counts = micro.map(targetTokens);
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) fail('usage', `step ${this.step + 1}: every label of the step's ${micro.length} micro-batches is ignored (${IGNORE_INDEX})`);
    let loss = 0;
    const sums = new Map<string, Float32Array>();
    for (const [i, b] of micro.entries()) {
      if (counts[i] === 0) continue; // its mean loss is 0/0; it adds nothing to the sum
      const w = counts[i] / total;
      const r = await this.run(b);
      loss += w * r.loss;
      for (const [name, g] of r.grads) {
        let acc = sums.get(name);
        if (!acc) sums.set(name, (acc = new Float32Array(g.length)));
        for (let j = 0; j < g.length; j++) acc[j] += w * g[j];
      }
    }
    return { loss, grads: sums };
  }

  /**
   * One optimisation step on a batch, or on micro-batches whose gradients are accumulated. Mixed
   * precision: the gradients are unscaled (× 1/S) before the norm, clipping and AdamW; a step whose
   * norm is not finite is skipped (no update; it counts as a step of the run and of the schedule,
   * not as an AdamW update) and the scale halves (./loss-scale.ts).
   */
  async train(batch: Batch | Batch[]): Promise<StepResult> {
    const t0 = performance.now();
    const micro = Array.isArray(batch) ? batch : [batch];
    const lossScale = this.scaler?.scale;
    const { loss, grads } = micro.length === 1 ? await this.run(micro[0], this.gradBuffers) : await this.sum(micro);
    const step = this.step + 1;
    const lr = learningRate(step, this.opts.schedule);
    this.unscaled({ grads });
    const gradNorm = globalNorm(grads.values());
    // Throws 'diverged' (nothing changed, this.step not advanced) when the scale falls under its floor.
    const skipped = this.scaler?.update(gradNorm, step) ?? false;
    if (!skipped) adamwStep(this.params, grads, ++this.updates, lr, this.opts.optimizer, gradNorm);
    this.step = step;
    return { step, loss, gradNorm, lr, ms: performance.now() - t0, skipped, ...(lossScale !== undefined ? { lossScale } : {}) };
  }

  /** Mean loss over batches, no update. */
  async evaluate(batches: Batch[]): Promise<number> {
    let s = 0;
    for (const b of batches) s += (await this.lossAndGrads(b)).loss;
    return s / batches.length;
  }

  state(meta: Record<string, unknown>): TrainState {
    return { step: this.step, params: this.params, meta, updates: this.updates, ...(this.scaler ? { scaler: this.scaler.state() } : {}) };
  }

  /** Restore parameters, moments and step from a checkpoint. */
  restore(s: TrainState): void {
    for (const [name, p] of this.params) {
      const q = s.params.get(name);
      if (!q || q.value.length !== p.value.length) fail('invalid', `checkpoint does not match the model: parameter '${name}'`);
      p.value.set(q.value);
      p.m.set(q.m);
      p.v.set(q.v);
    }
    this.step = s.step;
    this.updates = s.updates ?? s.step;
    // A checkpoint of an fp32 run resumed in mixed precision starts at the scaler's initial scale.
    if (this.scaler && s.scaler) this.scaler.restore(s.scaler);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
