/// <reference types="@webgpu/types" />
/**
 * The step tape: a training step's commands as GpuContext recorded them — each dispatch's pipeline,
 * bind group, uniform slot and workgroup counts, the copies, clears and host writes, and at every
 * submit the uniform bytes that went up with it — so that the next steps can be sent to the GPU
 * again without running the kernels' host code (argument checks, programs, pipeline and bind-group
 * lookups, uniform packing, the pool's bookkeeping). The host then only encodes (setPipeline,
 * setBindGroup, dispatch) and submits, as CUDA graphs replay a captured stream on PyTorch.
 *
 * What makes a replay the same step:
 * - the buffer pool hands every request of a step the buffer its counterpart got in the last step
 *   (./buffer-pool.ts), so two recordings of the same step name the same buffers, bind groups and
 *   pipelines; the step's scalars that change (AdamW's lr and bias corrections, the loss scale's
 *   1/S) live in a buffer the host writes before the step (./adamw.ts), not in uniforms;
 * - a tape is used only after two consecutive recordings of the step came out identical, op for op
 *   and uniform byte for uniform byte (`tapeDifference`): anything a kernel decided differently from one
 *   step to the next (a uniform, a buffer, a dispatch size) shows up there, and the step is then
 *   recorded as usual;
 * - host data a step uploads (the batch, the host segments' outputs: GpuContext.write) is a `write`
 *   op named by its key; the replay writes the new data of the same byte length into the same buffer;
 * - anything that touches the context's buffers or commands between steps (another kernel call, an
 *   evaluation, a pool change) invalidates the tape (GpuContext.tapeValid), and a buffer the tape
 *   uses that was destroyed while it was recorded makes it unusable.
 */
import type { DispatchProfile } from './dispatch-profile.js';

/** One recorded command. */
export type TapeOp =
  | { kind: 'dispatch'; name: string; pipeline: GPUComputePipeline; group: GPUBindGroup; offset: number; x: number; y: number; z: number; buffers: readonly GPUBuffer[] }
  | { kind: 'copy'; src: GPUBuffer; srcOffset: number; dst: GPUBuffer; dstOffset: number; bytes: number }
  | { kind: 'clear'; buffer: GPUBuffer; offset: number; bytes: number | undefined }
  /** Submit what was encoded since the last submit, after uploading `uniforms` to the start of the uniform ring. */
  | { kind: 'submit'; uniforms: Uint8Array }
  /** queue.writeBuffer(buffer, 0, data of `key`), `bytes` long (after padding to 4). */
  | { kind: 'write'; key: string; buffer: GPUBuffer; bytes: number };

export interface StepTape {
  readonly ops: readonly TapeOp[];
  /** The context's epoch at the end of the recording (GpuContext.tapeValid). */
  readonly epoch: number;
  readonly dispatches: number;
}

/** Collects a tape while GpuContext records (GpuContext.startTape / endTape). */
export class TapeRecorder {
  readonly ops: TapeOp[] = [];
  /** Why this recording cannot be replayed (first reason), if so. */
  broken: string | undefined;
  private readonly destroyed: GPUBuffer[] = [];
  dispatches = 0;

  push(op: TapeOp): void {
    if (op.kind === 'dispatch') this.dispatches++;
    this.ops.push(op);
  }

  break(reason: string): void {
    this.broken ??= reason;
  }

  /** A buffer destroyed during the recording: the tape is unusable if it names it. */
  destroy(b: GPUBuffer): void {
    this.destroyed.push(b);
  }

  finish(epoch: number): StepTape | string {
    if (this.broken) return this.broken;
    if (this.destroyed.length) {
      const gone = new Set(this.destroyed);
      if (this.ops.some((op) => usedBuffers(op).some((b) => gone.has(b)))) return 'a buffer the step used was destroyed during the step';
    }
    return { ops: this.ops, epoch, dispatches: this.dispatches };
  }
}

function usedBuffers(op: TapeOp): readonly GPUBuffer[] {
  switch (op.kind) {
    case 'dispatch': return op.buffers;
    case 'copy': return [op.src, op.dst];
    case 'clear': case 'write': return [op.buffer];
    default: return [];
  }
}

/** The first byte at which two uniform uploads differ (-1: none). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Where two recordings of a step first differ (undefined: the same commands, buffers and uniforms). */
export function tapeDifference(a: StepTape, b: StepTape): string | undefined {
  if (a.ops.length !== b.ops.length) return `${a.ops.length} commands, then ${b.ops.length}`;
  for (let i = 0; i < a.ops.length; i++) {
    const x = a.ops[i], y = b.ops[i];
    const at = `command ${i} (${x.kind}${x.kind === 'dispatch' ? ` ${x.name}` : ''})`;
    if (x.kind !== y.kind) return `${at}: then ${y.kind}`;
    switch (x.kind) {
      case 'dispatch': {
        const o = y as typeof x;
        if (x.pipeline !== o.pipeline) return `${at}: another pipeline (${o.name})`;
        if (x.group !== o.group) return `${at}: another bind group (other buffers)`;
        if (x.offset !== o.offset || x.x !== o.x || x.y !== o.y || x.z !== o.z) return `${at}: another uniform slot or workgroup count`;
        break;
      }
      case 'copy': {
        const o = y as typeof x;
        if (x.src !== o.src || x.dst !== o.dst || x.srcOffset !== o.srcOffset || x.dstOffset !== o.dstOffset || x.bytes !== o.bytes) return `${at}: another copy`;
        break;
      }
      case 'clear': {
        const o = y as typeof x;
        if (x.buffer !== o.buffer || x.offset !== o.offset || x.bytes !== o.bytes) return `${at}: another clear`;
        break;
      }
      case 'write': {
        const o = y as typeof x;
        if (x.buffer !== o.buffer || x.key !== o.key || x.bytes !== o.bytes) return `${at}: another host write`;
        break;
      }
      case 'submit': {
        const byte = firstDifference(x.uniforms, (y as typeof x).uniforms);
        if (byte >= 0) {
          // The dispatch of this submit whose uniform slot holds that byte (slots are ≥ 256 bytes; the last one at or before it).
          let owner: string | undefined, best = -1;
          for (let j = i - 1; j >= 0 && a.ops[j].kind !== 'submit'; j--) {
            const d = a.ops[j];
            if (d.kind === 'dispatch' && d.offset <= byte && d.offset > best) (best = d.offset), (owner = `${d.name}, command ${j}`);
          }
          return `${at}: other uniform values (byte ${byte}${owner ? `, of ${owner}` : ''})`;
        }
        break;
      }
    }
  }
  return undefined;
}

/** A replay in a dispatch profile: its host ms as 'pass' time, its dispatches and submits counted. */
export function countReplay(prof: DispatchProfile, tape: StepTape, ms: number): void {
  prof.pass += ms;
  prof.dispatches += tape.dispatches;
  for (const op of tape.ops) if (op.kind === 'dispatch') prof.byProgram[op.name] = (prof.byProgram[op.name] ?? 0) + 1;
  else if (op.kind === 'submit') prof.submits++;
}

/** Pads to a multiple of 4 bytes (queue.writeBuffer's unit). */
export function padded4(data: ArrayBufferView): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) return bytes as Uint8Array<ArrayBuffer>;
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}

/**
 * Send a tape's commands to the GPU again: `uniforms` is the context's uniform ring buffer,
 * `data(key)` the host data of each write (checked against the recorded byte length first: nothing
 * is queued when one differs).
 */
export function replayTape(device: GPUDevice, uniforms: GPUBuffer, tape: StepTape, data: (key: string) => ArrayBufferView): void {
  const writes = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const op of tape.ops)
    if (op.kind === 'write' && !writes.has(op.key)) {
      const d = padded4(data(op.key));
      if (d.byteLength !== op.bytes) throw new RangeError(`step tape: host value '${op.key}' has ${d.byteLength} bytes, the recorded step wrote ${op.bytes}`);
      writes.set(op.key, d);
    }
  const queue = device.queue;
  let encoder: GPUCommandEncoder | undefined;
  let pass: GPUComputePassEncoder | undefined;
  let pipeline: GPUComputePipeline | undefined;
  const offsets = [0];
  const endPass = () => {
    pass?.end();
    pass = undefined;
    pipeline = undefined;
  };
  for (const op of tape.ops) {
    switch (op.kind) {
      case 'dispatch':
        encoder ??= device.createCommandEncoder({ label: 'ortfuse replay' });
        pass ??= encoder.beginComputePass();
        if (pipeline !== op.pipeline) pass.setPipeline((pipeline = op.pipeline));
        offsets[0] = op.offset;
        pass.setBindGroup(0, op.group, offsets);
        pass.dispatchWorkgroups(op.x, op.y, op.z);
        break;
      case 'copy':
        endPass();
        (encoder ??= device.createCommandEncoder({ label: 'ortfuse replay' })).copyBufferToBuffer(op.src, op.srcOffset, op.dst, op.dstOffset, op.bytes);
        break;
      case 'clear':
        endPass();
        (encoder ??= device.createCommandEncoder({ label: 'ortfuse replay' })).clearBuffer(op.buffer, op.offset, op.bytes);
        break;
      case 'submit': {
        endPass();
        const commands = encoder?.finish();
        encoder = undefined;
        if (op.uniforms.byteLength) queue.writeBuffer(uniforms, 0, op.uniforms as Uint8Array<ArrayBuffer>);
        if (commands) queue.submit([commands]);
        break;
      }
      case 'write':
        queue.writeBuffer(op.buffer, 0, writes.get(op.key)!);
        break;
    }
  }
  if (encoder) {
    endPass();
    queue.submit([encoder.finish()]);
  }
}
