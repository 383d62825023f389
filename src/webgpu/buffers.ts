/// <reference types="@webgpu/types" />
/**
 * GPU buffers for kernels that share ORT-web's device: sizes padded to 16 bytes (ORT reads
 * unpadded user buffers wrongly), STORAGE | COPY_SRC | COPY_DST usage, and an allocation log
 * (size, label, time) so tests can prove what a kernel allocated — e.g. that the fused
 * linear-cross-entropy path never creates an [N, V] buffer.
 */

/** One buffer creation. `size` is the padded byte size actually requested from the device. */
export interface AllocationRecord {
  label: string;
  size: number;
  usage: number;
  /** performance.now() at creation, in ms. */
  time: number;
}

/** Every buffer created through a GpuContext, in order. */
export class AllocationLog {
  readonly records: AllocationRecord[] = [];

  add(label: string, size: number, usage: number): void {
    this.records.push({ label, size, usage, time: performance.now() });
  }

  /** Records since index `from` (take `log.records.length` before a call to scope it). */
  since(from: number): AllocationRecord[] {
    return this.records.slice(from);
  }

  /** The largest record (undefined when empty). */
  largest(from = 0): AllocationRecord | undefined {
    let best: AllocationRecord | undefined;
    for (const r of this.records.slice(from)) if (!best || r.size > best.size) best = r;
    return best;
  }

  clear(): void {
    this.records.length = 0;
  }
}

/** Bytes rounded up to a multiple of 16 (and at least 16). */
export function padTo16(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

export type HostArray = Float32Array | Int32Array | Uint32Array | BigInt64Array;

export const STORAGE_USAGE = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Create a padded, logged buffer (STORAGE | COPY_SRC | COPY_DST unless `usage` is given). */
export function createBuffer(device: GPUDevice, log: AllocationLog, label: string, bytes: number, usage = STORAGE_USAGE(), mappedAtCreation = false): GPUBuffer {
  const size = padTo16(bytes);
  log.add(label, size, usage);
  return device.createBuffer({ label, size, usage, mappedAtCreation });
}

/** Create a padded storage buffer holding `data` (written at creation, no staging copy). */
export function uploadBuffer(device: GPUDevice, log: AllocationLog, label: string, data: HostArray): GPUBuffer {
  const buf = createBuffer(device, log, label, data.byteLength, STORAGE_USAGE(), true);
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return buf;
}

/** Copy `bytes` of a buffer back to the host (waits for the queue). */
export async function readBuffer(device: GPUDevice, log: AllocationLog, src: GPUBuffer, bytes = src.size): Promise<ArrayBuffer> {
  const size = padTo16(bytes);
  const staging = createBuffer(device, log, 'readback', size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  const enc = device.createCommandEncoder({ label: 'readback' });
  enc.copyBufferToBuffer(src, 0, staging, 0, Math.min(size, src.size));
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange(0, bytes).slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}
