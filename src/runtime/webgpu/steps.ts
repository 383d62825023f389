/// <reference types="@webgpu/types" />
/**
 * How one training step's loss and gradients are produced on the GPU (the per-op policy):
 * - every op 'ort': one ORT session runs the whole training graph (fused ops as portable bodies).
 * - some op 'kernel': the stage plan of ./stage-split.ts, ORT segment 0 → kernel group 0 → ORT
 *   segment 1 → …, zero-copy: ORT outputs feed our kernels and later segments as the same GPU
 *   buffers, our kernels' buffers enter ORT as Tensor.fromGpuBuffer views.
 *
 * Lifetimes (docs/runtime.md, "Zero-copy lifetimes"): a value that crosses steps is released (ORT output
 * dispose(), our buffer destroy()) right after the commands of its last reader are submitted — an
 * ORT run has submitted when it resolves, a kernel group when the runner submits it — never
 * before. The graph's outputs (loss, gradients) stay valid until StepOutputs.release(), which the
 * trainer calls after submitting the commands that read them.
 */
import type * as Ort from 'onnxruntime-web';
import { GRAD_PREFIX } from '../../autodiff/names.js';
import { fail } from '../../errors.js';
import type { GpuContext } from '../../webgpu/context.js';
import type { HostArray } from '../../webgpu/buffers.js';
import type { WebGpuKernel } from '../../ops/kernel.js';
import { runKernel, type GpuValue } from './run-kernel.js';
import type { CaptureBuffers } from './capture.js';
import { HostAhead } from './host-ahead.js';
import type { KernelCall, StagePlan, ValueAlias } from './stage-split.js';
import { view, type Slot } from './slots.js';

export type OrtWeb = typeof Ort;
type Outputs = Ort.InferenceSession.OnnxValueMapType;

export interface StepOutputs {
  loss: GPUBuffer;
  /** By output name (grad.<param>). */
  grads: Map<string, GPUBuffer>;
  /** Hand back every buffer of the step (after the commands reading them are submitted). */
  release(): void;
}

export interface StepRunner {
  run(feeds: Record<string, Ort.Tensor>): Promise<StepOutputs>;
  release(): Promise<void>;
}

export function gpuBufferOf(t: Ort.Tensor | undefined, name: string): GPUBuffer {
  if (!t) return fail('runtime', `missing output '${name}'`);
  if (t.location !== 'gpu-buffer') fail('runtime', `output '${name}' came back on '${t.location}', not on the GPU`);
  return t.gpuBuffer as unknown as GPUBuffer;
}

const pick = (feeds: Record<string, Ort.Tensor>, names: readonly string[]) => Object.fromEntries(names.filter((n) => n in feeds).map((n) => [n, feeds[n]]));

function collect(out: Outputs, loss: GPUBuffer | undefined): { loss: GPUBuffer; grads: Map<string, GPUBuffer> } {
  const grads = new Map<string, GPUBuffer>();
  for (const [name, t] of Object.entries(out)) if (name.startsWith(GRAD_PREFIX)) grads.set(name, gpuBufferOf(t as Ort.Tensor, name));
  return { loss: loss ?? gpuBufferOf(out.loss as Ort.Tensor, 'loss'), grads };
}

const disposeAll = (out: Outputs) => { for (const t of Object.values(out)) (t as Ort.Tensor).dispose(); };

/** One session over the whole training graph. */
export class SingleSession implements StepRunner {
  constructor(private readonly session: Ort.InferenceSession) {}

  async run(feeds: Record<string, Ort.Tensor>): Promise<StepOutputs> {
    const out = await this.session.run(pick(feeds, this.session.inputNames));
    return { ...collect(out, undefined), release: () => disposeAll(out) };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Dispatches after which a kernel group is submitted in the middle (between two kernels). */
export const GROUP_SUBMIT_DISPATCHES = 128;

/** Time spent per kind of step (host side: ORT runs until they resolve, kernel recording + submit). */
export interface StageTimes {
  steps: number;
  ortRuns: number;
  ortMs: number;
  kernelGroups: number;
  kernelMs: number;
  /** Gradients handed to onGradient (applied between segments) so far. */
  gradientsEarly: number;
  /** Runs of host segments (StagePlan.hostSegments, ORT's CPU EP) and their ms; not in ortRuns / ortMs. */
  hostRuns: number;
  hostMs: number;
  /** Steps sent as a replay of the step tape (src/webgpu/step-tape.ts) and the host ms of those replays (in kernelMs too). */
  replays: number;
  replayMs: number;
}

/**
 * Measurement hooks around the stages of a step (bench/step-profile.ts): awaited after each ORT
 * run (with its host ms) and after each submitted kernel group; called before each kernel.
 */
export interface StageProbe {
  afterOrt(segment: number, hostMs: number): Promise<void>;
  beforeKernel(call: KernelCall): void;
  afterGroup(): Promise<void>;
}

/** The stage plan: ORT segments and our kernels, in order (./stage-split.ts). */
export class StagedSteps implements StepRunner {
  readonly times: StageTimes = { steps: 0, ortRuns: 0, ortMs: 0, kernelGroups: 0, kernelMs: 0, gradientsEarly: 0, hostRuns: 0, hostMs: 0, replays: 0, replayMs: 0 };
  /** Set by a profiler; unset in training (no waits). */
  probe?: StageProbe;
  private readonly outputs: Set<string>;
  /**
   * Called with each gradient output as soon as the step that makes it has submitted and no later
   * step reads it; it records the commands that read the buffer, and the runner submits them (one
   * submit for all gradients final at that point) before handing the buffers back (they are then
   * absent from StepOutputs.grads). Unset: gradients live to the end.
   */
  onGradient?: (name: string, buffer: GPUBuffer) => void;
  /** How far the host may run ahead of the GPU (./host-ahead.ts): awaited after each ORT run and kernel group. */
  readonly ahead: HostAhead;
  /**
   * Graph capture (./capture.ts): the segments whose sessions were created with ORT-web's
   * enableGraphCapture, and the fixed buffers they read and write. Unset: no segment is captured.
   */
  capture?: { buffers: CaptureBuffers; segments: ReadonlySet<number> };

  /** Reshape views made after each step (StagePlan.aliases), and every name that shares a buffer so. */
  private readonly aliasesAt = new Map<number, [string, ValueAlias][]>();
  private readonly shared = new Set<string>();
  /** Segments run on the CPU (StagePlan.hostSegments): their outputs are host tensors. */
  private readonly hostSegments: ReadonlySet<number>;

  constructor(
    private readonly ort: OrtWeb,
    private readonly ctx: GpuContext,
    private readonly sessions: Ort.InferenceSession[],
    private readonly plan: StagePlan,
    /** The kernels the plan's kernel steps name (webgpuKernels of src/ops/record.ts). */
    private readonly kernels: ReadonlyMap<string, WebGpuKernel>,
  ) {
    this.ahead = new HostAhead(ctx.device.queue);
    if (sessions.length !== plan.segmentCount) fail('invalid', `stage plan: ${plan.segmentCount} segments but ${sessions.length} sessions`);
    this.outputs = new Set(plan.outputs);
    this.hostSegments = new Set(plan.hostSegments ?? []);
    for (const [name, a] of Object.entries(plan.aliases ?? {})) {
      this.aliasesAt.set(a.at, [...(this.aliasesAt.get(a.at) ?? []), [name, a]]);
      this.shared.add(name).add(a.of);
    }
  }

  /**
   * Whether a step's GPU work is all ours (every ORT segment runs on the host, none is captured),
   * so that a recorded step can be replayed (src/webgpu/step-tape.ts): ORT's own GPU commands
   * cannot be.
   */
  get replayable(): boolean {
    return !this.capture?.segments.size && this.plan.steps.every((s) => s.kind === 'kernel' || this.hostSegments.has(s.segment) || !this.sessions[s.segment].outputNames.length);
  }

  /** A replayed step's host values: the batch feeds and the host segments' outputs (run here, on ORT's CPU EP), by name. */
  async hostValues(feeds: Record<string, Ort.Tensor>): Promise<Record<string, Ort.Tensor>> {
    const host: Record<string, Ort.Tensor> = { ...feeds };
    for (const step of this.plan.steps) if (step.kind === 'ort' && this.hostSegments.has(step.segment)) await this.runHost(step.segment, host);
    return host;
  }

  /** Run host segment `segment` on ORT's CPU EP from the host values it reads; its outputs join `host`. */
  private async runHost(segment: number, host: Record<string, Ort.Tensor>): Promise<void> {
    const session = this.sessions[segment];
    // A segment left with nothing to return is not run (as on the GPU).
    if (!session.outputNames.length) return;
    const t0 = performance.now();
    Object.assign(host, await session.run(Object.fromEntries(session.inputNames.map((n) => [n, host[n] ?? fail('runtime', `stage plan: no host value '${n}'`)]))));
    this.times.hostMs += performance.now() - t0;
    this.times.hostRuns++;
  }

  /** ORT segments of the plan. */
  get segmentCount(): number {
    return this.sessions.length;
  }

  /** Names of the graph outputs the plan produces (loss, grad.<param>). */
  get outputNames(): string[] {
    return [...this.outputs];
  }

  async run(feeds: Record<string, Ort.Tensor>): Promise<StepOutputs> {
    const { ctx, plan } = this;
    const live = new Map<string, Slot>();
    /** Names that share a buffer through a glue view this step (never written in place). */
    const viewed = new Set<string>();
    const releaseRead = (from: number, to: number) => {
      for (const [name, slot] of live) {
        const last = plan.lastUse[name];
        if (last !== undefined && last >= from && last <= to && !this.outputs.has(name)) {
          live.delete(name);
          slot.release();
        }
      }
    };
    // Host segments' outputs (CPU tensors) join the batch's host feeds.
    const host: Record<string, Ort.Tensor> = { ...feeds };
    const gpuValue = (name: string): GpuValue | undefined => {
      const slot = live.get(name);
      if (slot) return slot.value;
      const t = host[name];
      if (!t) return undefined;
      if (t.location === 'gpu-buffer') return { buffer: t.gpuBuffer as unknown as GPUBuffer, dims: t.dims, type: t.type };
      // A host value read by a kernel (the batch, a host segment's output): written once a step
      // into a pooled buffer (the same one every step, so its kernels' bind groups are found),
      // handed back after its last reader like any value of ours.
      const buffer = ctx.write(`host ${name}`, t.data as HostArray, name);
      const uploaded: Slot = { value: { buffer, dims: t.dims, type: t.type }, release: () => ctx.release(buffer) };
      live.set(name, uploaded);
      return uploaded.value;
    };
    const ortTensor = (name: string): Ort.Tensor => {
      // A feed or host value goes to ORT as it came (a host one also has a GPU copy once a kernel read it).
      const fed = host[name];
      if (fed) return fed;
      const slot = live.get(name);
      if (!slot) return fail('runtime', `stage plan: no value '${name}'`);
      slot.tensor ??= this.ort.Tensor.fromGpuBuffer(slot.value.buffer as never, { dataType: slot.value.type as 'float32', dims: slot.value.dims });
      return slot.tensor;
    };
    const applyFinished = (at: number) => {
      if (!this.onGradient) return;
      const applied: Slot[] = [];
      for (const [name, slot] of live)
        // Final (no later step reads it) and its parameter is read by no later step either.
        if (name.startsWith(GRAD_PREFIX) && this.outputs.has(name) && (plan.lastUse[name] ?? -1) <= at && (plan.inputLastUse?.[name.slice(GRAD_PREFIX.length)] ?? Infinity) <= at) {
          this.onGradient(name, slot.value.buffer);
          this.times.gradientsEarly++;
          live.delete(name);
          applied.push(slot);
        }
      if (!applied.length) return;
      ctx.submit();
      for (const slot of applied) slot.release();
    };
    let groupStart = -1;
    // Our buffers handed back during the step stay pooled for its later kernels and the next step (GpuContext.holdPool).
    ctx.holdPool(true);
    try {
      for (let i = 0; i < plan.steps.length; i++) {
        const step = plan.steps[i];
        if (step.kind === 'ort' && this.hostSegments.has(step.segment)) {
          // On the CPU: nothing of the GPU's to release or wait for.
          await this.runHost(step.segment, host);
          continue;
        }
        if (step.kind === 'ort') {
          const session = this.sessions[step.segment];
          const cap = this.capture?.segments.has(step.segment) ? this.capture.buffers : undefined;
          const t0 = performance.now();
          let out: Outputs;
          // A segment left with nothing to return (its outputs all views of its inputs) is not run.
          if (!session.outputNames.length) out = {};
          else if (cap) {
            // Fixed buffers: parameters and stable values bound as they are, other values copied in first.
            const inputs = Object.fromEntries(session.inputNames.map((n) => {
              const slot = live.get(n);
              return [n, slot ? cap.value(step.segment, n, slot.value) : cap.graphInput(step.segment, n, feeds[n] ?? fail('runtime', `stage plan: no value '${n}'`))];
            }));
            ctx.submit();
            out = await session.run(inputs);
            cap.adoptOutputs(step.segment, out as Record<string, Ort.Tensor>);
          } else out = await session.run(Object.fromEntries(session.inputNames.map((n) => [n, ortTensor(n)])));
          const ms = performance.now() - t0;
          this.times.ortMs += ms;
          if (session.outputNames.length) this.times.ortRuns++;
          if (this.probe) await this.probe.afterOrt(step.segment, ms);
          for (const [name, v] of Object.entries(out)) {
            const t = v as Ort.Tensor;
            live.get(name)?.release();
            live.set(name, { value: { buffer: gpuBufferOf(t, name), dims: t.dims, type: t.type }, tensor: t, ort: true, release: () => t.dispose() });
          }
          for (const [name, a] of this.aliasesAt.get(i) ?? []) live.set(name, view(live, feeds, a));
          // The run has submitted its commands: values it read last go back.
          releaseRead(i, i);
          applyFinished(i);
          await this.ahead.after();
          continue;
        }
        const t0 = performance.now();
        if (groupStart < 0) groupStart = i;
        this.probe?.beforeKernel(step.call);
        this.kernel(step.call, i, live, feeds, gpuValue, viewed);
        const next = plan.steps[i + 1];
        // A long group (with glue kernels, most of a step) goes to the GPU in parts, so the GPU
        // works while the host records the rest.
        if (next?.kind === 'kernel' && ctx.pending >= GROUP_SUBMIT_DISPATCHES) ctx.submit();
        if (!next || next.kind === 'ort') {
          ctx.submit();
          releaseRead(groupStart, i);
          groupStart = -1;
          applyFinished(i);
          this.times.kernelGroups++;
        }
        this.times.kernelMs += performance.now() - t0;
        if (!next || next.kind === 'ort') {
          if (this.probe) await this.probe.afterGroup();
          await this.ahead.after();
        }
      }
    } catch (e) {
      // Recorded commands may read what we hand back: submit them first.
      ctx.submit();
      for (const slot of live.values()) slot.release();
      ctx.holdPool(false);
      throw e;
    }
    this.times.steps++;
    // Values nothing reads any more (all their readers are queued).
    for (const [name, slot] of live) if (!this.outputs.has(name)) { live.delete(name); slot.release(); }
    const grads = new Map<string, GPUBuffer>();
    for (const [name, slot] of live) if (name.startsWith(GRAD_PREFIX)) grads.set(name, slot.value.buffer);
    const loss = live.get('loss') ?? fail('runtime', "stage plan: no 'loss' value at the end of the step");
    return { loss: loss.value.buffer, grads, release: () => { for (const slot of live.values()) slot.release(); live.clear(); ctx.holdPool(false); } };
  }

  /** Record one kernel node; its outputs join `live` (in-place RoPE takes over its input's slot). */
  private kernel(call: KernelCall, at: number, live: Map<string, Slot>, feeds: Record<string, Ort.Tensor>, gpuValue: (n: string) => GpuValue | undefined, viewed: Set<string>): void {
    const inputs = call.inputs.map((n) => (n ? gpuValue(n) : undefined));
    const mayReuse = (i: number) => {
      const n = call.inputs[i];
      return !!n && live.has(n) && !this.shared.has(n) && !viewed.has(n) && this.plan.lastUse[n] === at && !this.outputs.has(n) && call.inputs.indexOf(n) === call.inputs.lastIndexOf(n);
    };
    const r = runKernel(this.kernels, this.ctx, call, inputs, mayReuse);
    // Results nobody reads: back at once (the context destroys them after the submit if need be).
    for (const b of r.drop) this.ctx.release(b);
    if (r.viewOf !== undefined) {
      // A view (glue Reshape): output 0 shares its input's buffer; neither may be written in place.
      const src = call.inputs[r.viewOf]!, name = call.outputs[0], v = r.outputs[0];
      if (!name || !v) return;
      viewed.add(src).add(name);
      live.get(name)?.release();
      live.set(name, view(live, feeds, { of: src, dims: [...v.dims], at }));
      this.releaseOurs(call, at, live);
      return;
    }
    let inherited: Slot | undefined;
    if (r.reused !== undefined) {
      const n = call.inputs[r.reused]!;
      inherited = live.get(n);
      live.delete(n);
    }
    r.outputs.forEach((v, i) => {
      const name = call.outputs[i];
      if (!v || !name) return;
      // In place: the input's buffer and tensor (an ORT output stays ORT's own tensor) carry on.
      if (i === 0 && inherited) live.set(name, { value: v, tensor: inherited.tensor, ort: inherited.ort, release: inherited.release });
      else live.set(name, { value: v, release: () => this.ctx.release(v.buffer) });
    });
    this.releaseOurs(call, at, live);
  }

  /**
   * Hand back our buffers that this call read or made last, at once: a later kernel of the same
   * group may reuse them (the GpuContext pool; same queue, so it runs after their readers), so a
   * group spanning many layers holds one layer's working set, not all of it. ORT's buffers wait for
   * the group's submit (ORT may destroy what it gets back).
   */
  private releaseOurs(call: KernelCall, at: number, live: Map<string, Slot>): void {
    for (const name of [...call.inputs, ...call.outputs]) {
      if (!name || this.plan.lastUse[name] !== at || this.outputs.has(name)) continue;
      const slot = live.get(name);
      if (!slot || slot.ort) continue;
      live.delete(name);
      slot.release();
    }
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
    this.capture?.buffers.release();
  }
}
