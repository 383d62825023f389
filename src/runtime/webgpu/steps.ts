/// <reference types="@webgpu/types" />
/**
 * How one training step's loss and gradients are produced on the GPU (the per-op policy):
 * - 'ort': one ORT session runs the whole training graph (fused ops as portable bodies).
 * - 'kernel' for FusedLinearCrossEntropy: ORT segment A → our FLCE kernel → ORT segment B
 *   (./segments.ts), zero-copy: A's outputs feed the kernel and B as the same GPU buffers.
 *
 * Lifetimes: everything a step returns (ORT outputs, the kernel's buffers) stays valid until its
 * `release()`, which the trainer calls right after submitting the commands that read them; A's
 * outputs and the kernel's gradient buffers are released as soon as B's run is queued.
 */
import type * as Ort from 'onnxruntime-web';
import { GRAD_PREFIX } from '../../autodiff/names.js';
import { fail } from '../../errors.js';
import type { GpuContext } from '../../webgpu/context.js';
import { fusedLinearCrossEntropy } from '../../../custom-ops/fused-linear-cross-entropy/webgpu/flce.js';
import type { FlceCut } from './segments.js';

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

/** Segment A → FLCE kernel → segment B. */
export class FlceSegments implements StepRunner {
  constructor(
    private readonly ort: OrtWeb,
    private readonly ctx: GpuContext,
    private readonly a: Ort.InferenceSession,
    private readonly b: Ort.InferenceSession,
    private readonly cut: FlceCut,
  ) {}

  async run(feeds: Record<string, Ort.Tensor>): Promise<StepOutputs> {
    const { cut, ctx } = this;
    const outA = await this.a.run(pick(feeds, this.a.inputNames));
    const tensor = (n: string): Ort.Tensor => (outA[n] as Ort.Tensor | undefined) ?? feeds[n] ?? fail('runtime', `FLCE segments: no value '${n}'`);
    const hidden = tensor(cut.hidden), weight = tensor(cut.weight);
    const [n, h] = hidden.dims as number[];
    const v = (weight.dims as number[])[0];
    const r = fusedLinearCrossEntropy(ctx, {
      hidden: gpuBufferOf(hidden, cut.hidden), weight: gpuBufferOf(weight, cut.weight),
      bias: cut.bias ? gpuBufferOf(tensor(cut.bias), cut.bias) : undefined,
      labels: gpuBufferOf(tensor(cut.labels), cut.labels), labelType: 'int64',
      n, h, v, ignoreIndex: cut.ignoreIndex, labelSmoothing: cut.labelSmoothing, reduction: cut.reduction, chunkRows: cut.chunkRows,
    });
    // B's reads of the kernel's outputs must be queued after the kernel.
    ctx.submit();
    const { Tensor } = this.ort;
    const fromGpu = (buf: GPUBuffer | undefined, dims: number[]) => Tensor.fromGpuBuffer(buf as never, { dataType: 'float32', dims });
    const kernelOut: Record<string, Ort.Tensor> = { [cut.dHidden]: fromGpu(r.gradHidden, [n, h]) };
    if (cut.dWeight) kernelOut[cut.dWeight] = fromGpu(r.gradWeight, [v, h]);
    if (cut.dBias) kernelOut[cut.dBias] = fromGpu(r.gradBias, [v]);
    const feedsB: Record<string, Ort.Tensor> = {};
    for (const name of this.b.inputNames) feedsB[name] = kernelOut[name] ?? tensor(name);
    let outB: Outputs;
    try {
      outB = await this.b.run(feedsB);
    } finally {
      // B's commands are queued: A's outputs and the kernel's gradients have had their last use.
      disposeAll(outA);
      for (const buf of [r.gradHidden, r.gradWeight, r.gradBias, r.stats]) buf?.destroy();
    }
    return { ...collect(outB, r.loss), release: () => { disposeAll(outB); r.loss.destroy(); } };
  }

  async release(): Promise<void> {
    await this.a.release();
    await this.b.release();
  }
}
