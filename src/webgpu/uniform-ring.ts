/// <reference types="@webgpu/types" />
/**
 * The uniforms of one submit's dispatches, in one long-lived UNIFORM buffer: each dispatch writes
 * its values into the next slot of a host copy, and the slots in use go to the GPU with one
 * queue.writeBuffer just before the submit. A queue write runs after every command submitted before
 * it and before every command submitted after it, so the next submit may overwrite the slots an
 * earlier one read, and the buffer (and every bind group naming it) lives as long as its context.
 * Dispatches bind their slot through a dynamic offset, which is what lets GpuContext reuse bind
 * groups across dispatches that differ only in their uniforms.
 */
import { fail } from '../errors.js';
import { createBuffer, type AllocationLog } from './buffers.js';
import type { Uniform } from './program.js';

/** Slots per ring: one submit of the trainer's clip + AdamW pass over Qwen2-0.5B records 871 dispatches. */
export const RING_SLOTS = 1024;

/** Bytes of the generated `Uniforms` struct for `count` 4-byte members (vec4-padded, at least 16). */
export function uniformStructBytes(count: number): number {
  return Math.max(16, Math.ceil(Math.max(1, count) / 4) * 16);
}

/** Throws a RangeError when `x` does not fit its WGSL type (f32 always fits). */
export function checkUniform(x: Uniform): void {
  if (x.type === 'f32') return;
  const [lo, hi] = x.type === 'i32' ? [-(2 ** 31), 2 ** 31] : [0, 2 ** 32];
  if (!Number.isInteger(x.value) || x.value < lo || x.value >= hi) throw new RangeError(`uniform ${x.name}=${x.value} is not a ${x.type}`);
}

export class UniformRing {
  /** Byte stride between slots (minUniformBufferOffsetAlignment, at least 256). */
  readonly slot: number;
  private readonly host: ArrayBuffer;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f32: Float32Array;
  private gpu: GPUBuffer | undefined;
  /** Bytes of slots written since the last upload. */
  used = 0;

  constructor(private readonly device: GPUDevice, private readonly log: AllocationLog, readonly slots = RING_SLOTS) {
    this.slot = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
    this.host = new ArrayBuffer(this.slot * slots);
    this.u32 = new Uint32Array(this.host);
    this.i32 = new Int32Array(this.host);
    this.f32 = new Float32Array(this.host);
  }

  /** The GPU buffer the slots live in (created on first use, kept until destroy()). */
  get buffer(): GPUBuffer {
    return (this.gpu ??= createBuffer(this.device, this.log, 'uniforms', this.slot * this.slots, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST));
  }

  get full(): boolean {
    return this.used + this.slot > this.host.byteLength;
  }

  /** Write `uniforms` (laid out as the generated struct) into the next slot; returns its byte offset. */
  write(uniforms: readonly Uniform[]): number {
    const bytes = uniformStructBytes(uniforms.length);
    if (bytes > this.slot) fail('usage', `uniforms of ${bytes} bytes exceed the ${this.slot}-byte slot`);
    if (this.full) fail('runtime', 'uniform ring: full (upload before writing more)');
    const at = this.used, w = at / 4;
    for (let i = 0; i < uniforms.length; i++) {
      const x = uniforms[i];
      checkUniform(x);
      if (x.type === 'f32') this.f32[w + i] = x.value;
      else if (x.type === 'i32') this.i32[w + i] = x.value;
      else this.u32[w + i] = x.value;
    }
    // The rest of the slot too: an upload is then a function of the dispatches alone (step tapes compare them).
    this.u32.fill(0, w + uniforms.length, w + this.slot / 4);
    this.used += this.slot;
    return at;
  }

  /** A copy of the slots written since the last upload (what upload() would send). */
  pending(): Uint8Array {
    return new Uint8Array(this.host.slice(0, this.used));
  }

  /** Queue the slots written since the last upload (call right before submitting their commands). */
  upload(queue: GPUQueue): void {
    if (this.used) queue.writeBuffer(this.buffer, 0, this.host, 0, this.used);
    this.used = 0;
  }

  destroy(): void {
    this.gpu?.destroy();
    this.gpu = undefined;
    this.used = 0;
  }
}
