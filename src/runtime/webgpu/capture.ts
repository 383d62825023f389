/// <reference types="@webgpu/types" />
/**
 * Fixed buffers for ORT segments run with graph capture (ORT-web's `enableGraphCapture`).
 *
 * A captured session records its GPU commands once and then replays them, so each run must read
 * and write the same GPU buffers. ORT-web also binds a capture session's inputs and outputs only at
 * its first run. What a captured segment reads and writes therefore lives in buffers that last as
 * long as the trainer:
 * - outputs: ORT-web keeps the output buffers it bound at the first run (a pre-allocated output
 *   cannot be used: ORT-web 1.30 forgets at the second run that it was pre-allocated). They are
 *   *stable*: the same buffer at every step, checked at every run.
 * - inputs: parameters (the trainer's own buffers) and stable buffers are bound directly. Any other
 *   value (our kernels' outputs, outputs of segments that are not captured) is copied on the GPU
 *   into a fixed input buffer of that segment before the run.
 *
 * Buffer copies are not captured (ORT-web records dispatches only): a segment must not return a
 * value through a Reshape-like node, which ORT would copy into the output; the stage split returns
 * the node's source instead (StagePlan.aliases, ./stage-split.ts).
 *
 * Graph inputs are checked at every run to be the buffers bound at the first one. The cost is
 * memory: every value a captured segment makes or copies in stays allocated, and so do ORT's own
 * intermediates of a captured session.
 */
import type * as Ort from 'onnxruntime-web';
import { fail } from '../../errors.js';
import { numel } from '../../ir/tensor.js';
import type { GpuContext } from '../../webgpu/context.js';
import type { GpuValue } from './run-kernel.js';

type OrtWeb = typeof Ort;

const ELEMENT_BYTES: Record<string, number> = { float32: 4, int32: 4, uint32: 4, int64: 8, uint64: 8, float16: 2, int8: 1, uint8: 1, bool: 1 };

function byteSize(type: string, dims: readonly number[], what: string): number {
  const e = ELEMENT_BYTES[type] ?? fail('unsupported', `graph capture: ${what} has type ${type}, which cannot live in a GPU buffer`);
  return numel(dims) * e;
}

interface Fixed {
  buffer: GPUBuffer;
  tensor: Ort.Tensor;
}

export class CaptureBuffers {
  /** Buffers that are the same at every step (outputs of captured segments). */
  private readonly stable = new Set<GPUBuffer>();
  private readonly inputs = new Map<string, Fixed>();
  private readonly views = new Map<string, Ort.Tensor>();
  private readonly bound = new Map<string, GPUBuffer>();
  private readonly owned: GPUBuffer[] = [];

  constructor(private readonly ort: OrtWeb, private readonly ctx: GpuContext) {}

  private allocate(label: string, type: string, dims: readonly number[]): Fixed {
    const bytes = byteSize(type, dims, label);
    const buffer = this.ctx.buffer(label, Math.max(16, bytes));
    this.owned.push(buffer);
    const tensor = this.ort.Tensor.fromGpuBuffer(buffer as never, { dataType: type as 'float32', dims });
    return { buffer, tensor };
  }

  /**
   * Take note of the outputs of captured `segment`'s run. ORT-web keeps a capture session's output
   * bindings (its own buffers) from the first run on, so they are the same buffers at every step:
   * later segments bind them directly. A run that returns another buffer fails.
   */
  adoptOutputs(segment: number, out: Record<string, Ort.Tensor>): void {
    for (const [name, t] of Object.entries(out)) {
      const buffer = t.gpuBuffer as unknown as GPUBuffer;
      const key = `${segment}\u0000${name}`;
      const was = this.bound.get(key);
      if (!was) {
        this.bound.set(key, buffer);
        this.stable.add(buffer);
      } else if (was !== buffer) fail('runtime', `graph capture: segment ${segment} wrote '${name}' to another GPU buffer than at its first run`);
    }
  }

  /** A graph input (parameter) fed to captured `segment`: must be the buffer bound at the first run. */
  graphInput(segment: number, name: string, feed: Ort.Tensor): Ort.Tensor {
    if (feed.location !== 'gpu-buffer') fail('unsupported', `graph capture: segment ${segment} reads '${name}' from the host; a captured segment reads GPU buffers only`);
    const buffer = feed.gpuBuffer as unknown as GPUBuffer;
    const key = `${segment}\u0000${name}`;
    const was = this.bound.get(key);
    if (was && was !== buffer) fail('runtime', `graph capture: '${name}' is fed from another GPU buffer than at the first step; a captured segment replays its first bindings`);
    this.bound.set(key, buffer);
    return feed;
  }

  /**
   * The tensor that captured `segment` reads as input `name` holding `value`: the value's own
   * buffer when it is stable, else a copy recorded on `ctx` into the segment's fixed input buffer
   * (the caller submits before the run).
   */
  value(segment: number, name: string, value: GpuValue): Ort.Tensor {
    const key = `${segment}\u0000${name}`;
    if (this.stable.has(value.buffer)) {
      // A view (./stage-split.ts aliases) has other dims than the output it shares a buffer with.
      let t = this.views.get(key);
      if (!t) this.views.set(key, (t = this.ort.Tensor.fromGpuBuffer(value.buffer as never, { dataType: value.type as 'float32', dims: value.dims })));
      return t;
    }
    let f = this.inputs.get(key);
    if (!f) this.inputs.set(key, (f = this.allocate(`captured ${segment} input ${name}`, value.type, value.dims)));
    const bytes = Math.ceil(byteSize(value.type, value.dims, name) / 4) * 4;
    if (bytes > f.buffer.size) fail('runtime', `graph capture: '${name}' grew to ${bytes} bytes after the first step (${f.buffer.size})`);
    this.ctx.copy(value.buffer, 0, f.buffer, 0, bytes);
    return f.tensor;
  }

  /** Destroy every fixed buffer (after the sessions are released). */
  release(): void {
    for (const b of this.owned) b.destroy();
    this.owned.length = 0;
    this.stable.clear();
    this.inputs.clear();
    this.views.clear();
  }
}
