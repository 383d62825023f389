/// <reference types="@webgpu/types" />
/**
 * GPU time of labelled spans of kernels recorded on a GpuContext, from WebGPU timestamp queries
 * (the device needs the 'timestamp-query' feature). `begin(label)` starts a compute pass whose
 * start and end the GPU stamps; `end()` closes it; `read()` resolves every stamped pair after the
 * work is done and returns the milliseconds per label (summed over repeated spans). A span covers
 * one compute pass: a copy or clear inside it ends the timed pass early.
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';

export class GpuTimer {
  private readonly querySet: GPUQuerySet;
  private readonly labels: string[] = [];

  /** `capacity` spans between reads: at most 2048 (WebGPU allows 4096 queries per set). */
  constructor(private readonly ctx: GpuContext, private readonly capacity = 256) {
    if (capacity > 2048) fail('usage', `GpuTimer: capacity ${capacity} > 2048 (4096 timestamp queries per set)`);
    if (!ctx.device.features.has('timestamp-query')) fail('usage', "GpuTimer: the device lacks the 'timestamp-query' feature");
    this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: 2 * capacity });
  }

  /** Start timing a span (ends any open one). */
  begin(label: string): void {
    const i = this.labels.length;
    if (i >= this.capacity) fail('usage', `GpuTimer: more than ${this.capacity} spans before read()`);
    this.labels.push(label);
    this.ctx.timestamps({ querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 });
  }

  /** Close the open span: later dispatches go to an untimed pass. */
  end(): void {
    this.ctx.timestamps(undefined);
  }

  /** Wait for the GPU and return ms per label; the timer is then empty and reusable. */
  async read(): Promise<Map<string, number>> {
    const n = this.labels.length;
    const out = new Map<string, number>();
    if (n === 0) return out;
    await this.ctx.sync();
    const device = this.ctx.device;
    const resolved = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const host = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.resolveQuerySet(this.querySet, 0, 2 * n, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, host, 0, 16 * n);
    device.queue.submit([enc.finish()]);
    await host.mapAsync(GPUMapMode.READ);
    const t = new BigUint64Array(host.getMappedRange().slice(0));
    host.unmap();
    host.destroy();
    resolved.destroy();
    this.labels.forEach((l, i) => out.set(l, (out.get(l) ?? 0) + Number(t[2 * i + 1] - t[2 * i]) / 1e6));
    this.labels.length = 0;
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
  }
}
