/// <reference types="@webgpu/types" />
/**
 * The `webgpu` backend trainer: onnxruntime-web's WebGPU EP runs the training-step graph
 * (parameters, input_ids, labels → loss, grad.<param>) and our WGSL kernels clip and apply AdamW on
 * ORT's own GPUDevice. Runs in the browser and in Node (dawn.node; see ./ort-web-node.ts). No Node imports.
 *
 * Buffers and lifetimes (docs/runtime.md, "Zero-copy lifetimes"):
 * - owned by the trainer for its whole life: per parameter a value, m and v buffer (16-byte padded
 *   STORAGE, created on ORT's device after the session exists), the norm partials, the 32-byte stats
 *   buffer (src/webgpu/grad-norm.ts STATS: [loss, norm, clip, overflow] read back, then the step's
 *   scalars lr, c1, c2, gradScale the host writes before each step) and one MAP_READ staging buffer
 *   for the first four; freed in release().
 * - parameters enter ORT as Tensor.fromGpuBuffer views of the value buffers (ORT does not own them).
 * - ORT's outputs (loss, gradients) are gpu-buffer tensors from ORT's pool, alive only within one
 *   step: our kernels (norm, clip, AdamW) and the loss copy are recorded and submitted, and only
 *   then is each output disposed, so ORT's next use of the buffer is queued after our reads.
 * - the host sees one 16-byte readback per step (loss and gradient norm), nothing else.
 *
 * Mixed precision (the graph has the `loss_scale` input; ../loss-scale.ts): the scale is fed from a
 * 16-byte buffer the trainer writes before each step. The gradients come out times S; the norm
 * kernels sum the squares of g·(1/S), so they report the unscaled norm and clip factor
 * (src/webgpu/grad-norm.ts), and AdamW multiplies by 1/S. An overflow raises stats[3] on the GPU and AdamW's guard then leaves p, m and v alone,
 * with no host round trip before the update:
 * - with clipping (and on a single session): every gradient is summed before the first AdamW, so
 *   a non-finite norm skips the whole step;
 * - without clipping on a stage plan, each parameter's AdamW runs as soon as its gradient is final;
 *   each sum-of-squares dispatch raises the flag when its partial is not finite, so the parameter
 *   that overflowed and every later one are skipped, but parameters whose gradient was final and
 *   finite before the first overflow keep this step's update (a partial skip; their AdamW t then
 *   repeats at the next step). Use clipping for a whole-step skip.
 * The host reads the norm with the loss after the step and updates the scaler.
 *
 * Step replay (./replay.ts, TrainerOptions.stepReplay): on a stage plan whose GPU work is all ours
 * (the default plan), each recorded step is also a step tape; once two consecutive recordings
 * agree, the next steps send the last one again instead of recording (the update's path and the
 * step's scalars are in buffers, so every recorded command is the same from step to step).
 */
import type * as Ort from 'onnxruntime-web';
import { fail, OrtfuseError } from '../../errors.js';
import { GRAD_PREFIX, LOSS_SCALE } from '../../autodiff/names.js';
import type { Batch } from '../../data/batches.js';
import { writeStepScalars, type AdamWStep } from '../../webgpu/adamw.js';
import { GpuContext } from '../../webgpu/context.js';
import { f16MatrixFor } from '../../webgpu/f16-matrix.js';
import { AllocationLog, createBuffer } from '../../webgpu/buffers.js';
import type { TrainState } from '../checkpoint.js';
import { learningRate, type ParamState } from '../optimizer.js';
import type { StepResult, TrainerOptions } from '../trainer.js';
import { lossScalerFor, type LossScaler } from '../loss-scale.js';
import { OVERFLOW_SLOT, partialCount, STATS_FLOATS } from '../../webgpu/grad-norm.js';
import type { StagePlan } from './stage-split.js';
import { webgpuKernels, type FusedOpRecord } from '../../ops/record.js';
import { GLUE_KERNELS } from './glue.js';
import { openSessions } from './sessions.js';
import { SingleSession, StagedSteps, type OrtWeb, type StepOutputs, type StepRunner } from './steps.js';
import { CaptureBuffers } from './capture.js';
import { memoryMeter } from './memory.js';
import { StepReplay } from './replay.js';
import { recordStep, type GpuParam } from './update.js';
import { ReadbackPacer } from '../../webgpu/readback-pacer.js';

export type { OrtWeb } from './steps.js';



/** One parameter of the training graph. */
export interface ParamSpec {
  name: string;
  dims: number[];
  /** Initial float32 values (length = product of dims). */
  value: Float32Array;
}

/** What the trainer needs: the serialized training graph and its parameters. */
export interface TrainingSpec {
  model: Uint8Array;
  params: ParamSpec[];
  /**
   * Per-op policy 'kernel' for some fused op: the graph split into ORT segments and our kernels
   * (./stage-split.ts); the trainer then runs the plan instead of `model`.
   */
  stages?: { segments: Uint8Array[]; plan: StagePlan; capturable?: boolean[] };
  /** The graph is specialised to batches of exactly this shape (src/runtime/webgpu/training-spec.ts). */
  shape?: SpecShape;
  /** The graph has the `loss_scale` input (mixed precision): the trainer feeds it and scales dynamically. */
  lossScale?: boolean;
  /**
   * ORT's storage buffer cache (WebGPU EP storageBufferCacheMode; default ORT's 'bucket', sizes
   * rounded up to buckets): 'simple' reuses exact sizes, 'disabled' destroys a buffer once unused.
   */
  bufferCache?: 'disabled' | 'lazyRelease' | 'simple' | 'bucket';
}

/** A batch shape [batch, seq]. */
export interface SpecShape {
  batch: number;
  seq: number;
}

/**
 * WebGPU EP options of the trainer's sessions. validationMode 'disabled': ORT-web pushes no error
 * scopes around its work (−13% host ms per ORT run and +12-13% tok/s on the 0.5B 8×512 step, two
 * H200 calls: bench/results/step-profile-h200.md); WebGPU errors still surface, as uncaptured
 * errors that GpuContext (listening on ORT's device) throws at its next sync.
 */
export const DEFAULT_EP_OPTIONS: Record<string, string> = { validationMode: 'disabled' };

/**
 * Released buffers of our kernels kept for reuse between steps beyond the last step's working set
 * (which the pool always keeps: GpuContext.holdPool) (TrainerOptions.bufferPool; 0 = no pool).
 */
export const DEFAULT_POOL_BYTES = 1 * 2 ** 30;


/** Mixed precision: the scaler and the 16-byte buffer the `loss_scale` feed views. */
interface ScaleFeed {
  scaler: LossScaler;
  buffer: GPUBuffer;
  tensor: Ort.Tensor;
}

export class WebGpuTrainer {
  step = 0;
  /** AdamW's t: updates applied (steps skipped by loss scaling do not count; else = step). */
  updates = 0;
  readonly log: AllocationLog;

  private constructor(
    private readonly ort: OrtWeb,
    /** What runs a step: one session, or the stage plan (its `times` say where the time went). */
    readonly runner: StepRunner,
    readonly ctx: GpuContext,
    private readonly params: GpuParam[],
    private readonly partials: GPUBuffer,
    private readonly stats: GPUBuffer,
    private readonly staging: GPUBuffer,
    private readonly opts: TrainerOptions,
    private readonly shape?: SpecShape,
    private readonly lossScale?: ScaleFeed,
  ) {
    this.log = ctx.log;
    this.replayer = new StepReplay(ctx, runner, opts.stepReplay !== false);
  }

  /** Mixed precision: the dynamic loss scale (undefined in fp32). */
  get scaler(): LossScaler | undefined {
    return this.lossScale?.scaler;
  }

  /**
   * Create the session(s), then the parameter and optimizer buffers on ORT's device. `ops`: the
   * fused ops whose kernels a stage plan calls (FUSED_OPS of custom-ops/registry.ts).
   */
  static async create(ort: OrtWeb, spec: TrainingSpec, opts: TrainerOptions, ops: readonly FusedOpRecord[], epOptions: Record<string, string> = DEFAULT_EP_OPTIONS): Promise<WebGpuTrainer> {
    const { sessions, captured, deviceHolder } = await openSessions(ort, spec, opts, epOptions);
    const device = ort.env.webgpu.device as unknown as GPUDevice | undefined;
    if (!device) return fail('runtime', 'onnxruntime-web created no WebGPU device (is the webgpu EP available here?)');
    // Our kernels' buffers are reused by size across steps (not under capture, whose bound buffers are its own).
    const ctx = new GpuContext(device, { poolBytes: captured.size ? 0 : opts.bufferPool ?? DEFAULT_POOL_BYTES });
    // Mixed precision: the f16-operand GEMMs on the tensor cores where the device has them, else
    // on gemm_f32 rounding its operands (same values, slower than fp32; src/webgpu/gemm-mixed.ts).
    const f16 = spec.lossScale ? await f16MatrixFor(device) : undefined;
    if (f16?.options) ctx.f16Matrix = f16.options;
    const runner = spec.stages ? new StagedSteps(ort, ctx, sessions, spec.stages.plan, new Map([...webgpuKernels(ops), ...GLUE_KERNELS])) : new SingleSession(sessions[0]);
    if (runner instanceof StagedSteps) {
      if (opts.inFlight !== undefined) runner.ahead.inFlight = opts.inFlight;
      if (opts.unfreedBytes) {
        // The realm's meter counts what ORT and we destroy; installed before ORT made its device (ort-web-node.ts, browser.ts).
        if (typeof (globalThis as { GPUDevice?: unknown }).GPUDevice === 'undefined') fail('runtime', 'unfreedBytes needs the WebGPU classes (GPUDevice) as globals to count released buffers');
        runner.ahead.meter = memoryMeter();
        runner.ahead.unfreedBytes = opts.unfreedBytes;
      }
      if (captured.size) runner.capture = { buffers: new CaptureBuffers(ort, ctx), segments: captured };
    }
    const outputs = new Set(runner instanceof StagedSteps ? runner.outputNames : sessions[0].outputNames);
    if (!outputs.has('loss')) fail('invalid', "the training graph has no 'loss' output");
    const params: GpuParam[] = [];
    let partialsLen = 0;
    for (const p of spec.params) {
      const size = p.dims.reduce((a, b) => a * b, 1);
      if (p.value.length !== size) fail('invalid', `parameter '${p.name}': ${p.value.length} values for shape [${p.dims}]`);
      const hasGrad = outputs.has(GRAD_PREFIX + p.name);
      const noDecay = !hasGrad || (opts.noDecay ?? ((_, d) => d.length <= 1))(p.name, p.dims);
      const value = ctx.upload(`param ${p.name}`, p.value);
      const feed = ort.Tensor.fromGpuBuffer(value as never, { dataType: 'float32', dims: p.dims });
      const moment = (k: string) => (hasGrad ? ctx.buffer(`${k} ${p.name}`, size * 4) : undefined);
      params.push({ name: p.name, dims: p.dims, size, value, m: moment('m'), v: moment('v'), feed, hasGrad, noDecay });
      if (hasGrad) partialsLen += partialCount(size);
    }
    const partials = ctx.buffer('grad-norm partials', partialsLen * 4);
    const stats = ctx.buffer('stats [loss, norm, clip, overflow, lr, c1, c2, gradScale]', STATS_FLOATS * 4);
    const staging = createBuffer(device, ctx.log, 'stats readback', 16, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const scaler = lossScalerFor(spec.lossScale ? [LOSS_SCALE] : [], opts.lossScale);
    let lossScale: ScaleFeed | undefined;
    if (scaler) {
      const buffer = ctx.buffer('loss scale', 16);
      lossScale = { scaler, buffer, tensor: ort.Tensor.fromGpuBuffer(buffer as never, { dataType: 'float32', dims: [] }) };
    }
    await ctx.sync();
    const trainer = new WebGpuTrainer(ort, runner, ctx, params, partials, stats, staging, opts, spec.shape, lossScale);
    trainer.deviceHolder = deviceHolder;
    if (f16) trainer.mixedGemm = f16.options ? `tensor cores (f16 subgroup matrices ${f16.options.config.M}x${f16.options.config.N}x${f16.options.config.K})` : `f16-rounded operands on the fp32 GEMM (${f16.why})`;
    return trainer;
  }

  /** Mixed precision: where the fused ops' f16-operand GEMMs run (undefined in fp32). */
  mixedGemm?: string;

  /** Bytes of the buffers the trainer holds for its whole life (parameters, moments, norm scratch). */
  get residentBytes(): number {
    return this.params.reduce((s, p) => s + p.value.size + (p.m?.size ?? 0) + (p.v?.size ?? 0), 0) + this.partials.size + this.stats.size + this.staging.size + (this.lossScale?.buffer.size ?? 0);
  }

  /** Parameter elements in total. */
  get parameterCount(): number {
    return this.params.reduce((s, p) => s + p.size, 0);
  }

  /** The step's feeds: the batch, the parameters, and (mixed precision) the loss scale, whose value is queued here. */
  private feeds(batch: Batch): Record<string, Ort.Tensor> {
    const { Tensor } = this.ort;
    if (this.shape && (batch.batch !== this.shape.batch || batch.seq !== this.shape.seq))
      fail('invalid', `the training graph is specialised to batches of ${this.shape.batch}x${this.shape.seq}, not ${batch.batch}x${batch.seq}`);
    const feeds: Record<string, Ort.Tensor> = {
      input_ids: new Tensor('int64', batch.inputIds, [batch.batch, batch.seq]),
      labels: new Tensor('int64', batch.labels, [batch.batch, batch.seq]),
    };
    for (const p of this.params) feeds[p.name] = p.feed;
    if (this.lossScale) {
      // Queued before the step's commands (the previous step's readers have finished: finish() waited).
      this.ctx.device.queue.writeBuffer(this.lossScale.buffer, 0, Float32Array.of(this.lossScale.scaler.scale));
      feeds[LOSS_SCALE] = this.lossScale.tensor;
    }
    return feeds;
  }

  private async run(batch: Batch): Promise<StepOutputs> {
    const feeds = this.feeds(batch);
    try {
      return await this.runner.run(feeds);
    } catch (e) {
      return fail('runtime', `step ${this.step + 1}: onnxruntime-web failed: ${(e as Error).message.split('\n')[0]}`, e);
    }
  }

  /**
   * Copy the loss (stats[0] ← loss) and read back [loss, norm, clip]; releases `out` after submit.
   * `tape`: the step was recorded as a step tape, which ends here (after the release: the pool's
   * end-of-step bookkeeping belongs to the step).
   */
  private async finish(out: StepOutputs, tape?: string): Promise<Float32Array> {
    this.ctx.copy(out.loss, 0, this.stats, 0, 4);
    this.ctx.copy(this.stats, 0, this.staging, 0, 16);
    this.ctx.submit();
    // Everything that reads the step's outputs is on the queue: hand them back (ORT's pool, ours).
    out.release();
    if (tape !== undefined) this.replayer.end(tape);
    return this.readStats();
  }

  private async readStats(): Promise<Float32Array> {
    // Sleep through most of the GPU's step before dawn.node's event polling starts (ReadbackPacer).
    await this.pacer.around(async () => {
      await this.ctx.sync();
      await this.staging.mapAsync(GPUMapMode.READ);
    });
    const s = new Float32Array(this.staging.getMappedRange().slice(0));
    this.staging.unmap();
    if (!Number.isFinite(s[0])) throw new OrtfuseError('diverged', `step ${this.step + 1}: the loss is ${s[0]}`);
    return s;
  }

  /** When the host starts waiting for each step's stats (../../webgpu/readback-pacer.ts; ORTFUSE_READBACK_PACER=off: at once, for measurements). */
  private readonly pacer = new ReadbackPacer();

  /** Recording steps as step tapes and replaying them (./replay.ts). */
  private readonly replayer: StepReplay;

  /** Why the last step was not a replay of the step tape (undefined after a replay; 'off' when disabled). */
  get replayNote(): string | undefined {
    return this.replayer.note;
  }

  /**
   * One optimisation step: loss and gradients (ORT), clip and AdamW (ours), all on the GPU. Without
   * clipping (maxGradNorm 0) on a stage plan, each parameter's AdamW runs as soon as its gradient is
   * final, between segments, and the gradient goes back to ORT's pool at once, so the full gradient
   * set never lives at once (the norm is still reported). Global-norm clipping needs every gradient
   * before the first update: then all live to the end of the step, as before.
   */
  async train(batch: Batch): Promise<StepResult> {
    const t0 = performance.now();
    const t = this.step + 1;
    const lr = learningRate(t, this.opts.schedule);
    const o = this.opts.optimizer;
    const scaler = this.lossScale?.scaler;
    const lossScale = scaler?.scale;
    // AdamW's t counts applied updates; the gradients carry S under mixed precision.
    const hp = { step: this.updates + 1, lr, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0, gradScale: scaler ? scaler.inverse : 1 };
    // The step's scalars and a clear overflow flag, queued before this step's commands (kernels read them from stats).
    writeStepScalars(this.ctx.device.queue, this.stats, hp);
    if (scaler) this.ctx.device.queue.writeBuffer(this.stats, OVERFLOW_SLOT * 4, new Float32Array(1));
    // A verified step tape of this batch shape, still valid: the step is a replay of it; else it is
    // recorded (as a tape where the plan allows).
    const key = `${batch.batch}x${batch.seq}`;
    let s: Float32Array;
    if (this.replayer.ready(key)) {
      await this.replayer.replay(this.feeds(batch));
      s = await this.readStats();
    } else {
      const taping = this.replayer.begin();
      try {
        s = await this.record(batch, hp, taping ? key : undefined);
      } catch (e) {
        // A failed step leaves no tape.
        if (taping) this.replayer.abort();
        throw e;
      }
    }
    if (!scaler && !Number.isFinite(s[1]))
      throw new OrtfuseError('diverged', `step ${t}: the gradient norm is ${s[1]} (a gradient holds NaN or Inf); the parameters are no longer valid`);
    // Mixed: a non-finite norm (the GPU skipped the update) halves the scale; under its floor, 'diverged'.
    const skipped = scaler?.update(s[1], t) ?? false;
    if (!skipped) this.updates++;
    this.step = t;
    return { step: t, loss: s[0], gradNorm: s[1], lr, ms: performance.now() - t0, skipped, ...(lossScale !== undefined ? { lossScale } : {}) };
  }

  /** Record one step: the loss and gradients (the runner), the norm, clip and AdamW (./update.ts); its stats read back. `tape`: the key of the step tape being recorded. */
  private async record(batch: Batch, hp: AdamWStep, tape: string | undefined): Promise<Float32Array> {
    const update = { params: this.params, partials: this.partials, stats: this.stats, hp, maxGradNorm: this.opts.optimizer.maxGradNorm ?? 0, scaled: !!this.lossScale };
    return this.finish(await recordStep(this.ctx, this.runner, update, () => this.run(batch)), tape);
  }

  /** Mean loss over batches, no update. */
  async evaluate(batches: Batch[]): Promise<number> {
    let sum = 0;
    for (const b of batches) sum += (await this.finish(await this.run(b)))[0];
    return sum / batches.length;
  }

  /** Loss and gradients (mixed precision: unscaled) of one batch copied back to the host, no update (for tests and checks). */
  async gradients(batch: Batch): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const out = await this.run(batch);
    const inverse = this.lossScale?.scaler.inverse ?? 1;
    try {
      const grads = new Map<string, Float32Array>();
      for (const p of this.params) {
        const g = out.grads.get(GRAD_PREFIX + p.name);
        if (!g) continue;
        const host = await this.ctx.readF32(g, p.size);
        if (inverse !== 1) for (let i = 0; i < host.length; i++) host[i] *= inverse;
        grads.set(p.name, host);
      }
      return { loss: (await this.ctx.readF32(out.loss, 1))[0], grads };
    } finally {
      this.ctx.submit();
      out.release();
    }
  }

  /** Trained parameters and their moments copied back to the host (for checkpoints; frozen inputs are not state). */
  async state(meta: Record<string, unknown>): Promise<TrainState> {
    const params = new Map<string, ParamState>();
    for (const p of this.params) {
      if (!p.m || !p.v) continue;
      const [value, m, v] = [await this.ctx.readF32(p.value, p.size), await this.ctx.readF32(p.m, p.size), await this.ctx.readF32(p.v, p.size)];
      params.set(p.name, { value, m, v, noDecay: p.noDecay });
    }
    return { step: this.step, params, meta, updates: this.updates, ...(this.lossScale ? { scaler: this.lossScale.scaler.state() } : {}) };
  }

  /** Restore parameters, moments and step from a checkpoint. */
  restore(s: TrainState): void {
    const q = this.ctx.device.queue;
    for (const p of this.params) {
      if (!p.m || !p.v) continue;
      const c = s.params.get(p.name);
      if (!c || c.value.length !== p.size) fail('invalid', `checkpoint does not match the model: parameter '${p.name}'`);
      for (const [dst, src] of [[p.value, c.value], [p.m, c.m], [p.v, c.v]] as const) q.writeBuffer(dst, 0, src as Float32Array<ArrayBuffer>);
    }
    this.step = s.step;
    this.updates = s.updates ?? s.step;
    // A checkpoint of an fp32 run resumed in mixed precision starts at the scaler's initial scale.
    if (this.lossScale && s.scaler) this.lossScale.scaler.restore(s.scaler);
  }

  /** The session that made ORT-web's device when no segment runs on the GPU (released last). */
  private deviceHolder?: Ort.InferenceSession;

  /** Release the session, then destroy every buffer the trainer owns. */
  async release(): Promise<void> {
    await this.runner.release();
    await this.deviceHolder?.release();
    for (const p of this.params) for (const b of [p.value, p.m, p.v]) b?.destroy();
    for (const b of [this.partials, this.stats, this.staging, this.lossScale?.buffer]) b?.destroy();
    this.ctx.destroy();
  }
}

