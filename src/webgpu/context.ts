/// <reference types="@webgpu/types" />
/**
 * GpuContext: what every kernel runs against. It wraps a GPUDevice that someone else created
 * (dawn.node in tests, ORT-web's `ort.env.webgpu.device` in the backend) and adds the allocation
 * log, one open command encoder + compute pass that kernels record into, a uniform ring (one
 * long-lived buffer written once per submit, ./uniform-ring.ts), bind groups reused across
 * dispatches on the same buffers (./bind-groups.ts) and temporaries freed after submit.
 *
 * Host cost per dispatch (bench/results/dispatch-host.md): the pipeline is found by comparing
 * signatures, the uniforms are copied into the ring, the bind group is looked up by buffer identity
 * (created on a miss), and the pass gets setPipeline (only when it changes), setBindGroup with the
 * slot's offset and dispatchWorkgroups.
 *
 * Ordering: dispatches in one compute pass run in order with their writes visible to the next
 * dispatch (WebGPU synchronises storage usage between dispatches), so a chain of kernels needs no
 * explicit barriers. Buffer copies and clears end the pass and start a new one.
 */
import { fail } from '../errors.js';
import { BindGroupCache } from './bind-groups.js';
import { BufferPool, fillNaNProgram } from './buffer-pool.js';
import type { DispatchProfile } from './dispatch-profile.js';
export { dispatchProfile, type DispatchProfile } from './dispatch-profile.js';
import type { BufferInit, GpuContextOptions } from './context-options.js';
export type { BufferInit, GpuContextOptions } from './context-options.js';
import { countReplay, padded4, replayTape, TapeRecorder, type StepTape } from './step-tape.js';
import { AllocationLog, createBuffer, padTo16, readBuffer, uploadBuffer, type HostArray } from './buffers.js';
import type { F16Options } from './gemm-f16-plan.js';
import { getPipeline, type Program } from './program.js';
import { UniformRing, uniformStructBytes } from './uniform-ring.js';

/** ORTFUSE_POISON_REUSED=1 (Node), read when a context is made. */
const poisonFromEnv = () => (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.ORTFUSE_POISON_REUSED === '1';

export class GpuContext {
  readonly log: AllocationLog;
  /** Kernels may emit subgroup code (the device was created with 'subgroups'). */
  readonly subgroups: boolean;
  private readonly ring: UniformRing;
  private readonly groups: BindGroupCache;
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  /** The pipeline last set on the open pass. */
  private passPipeline: GPUComputePipeline | undefined;
  private temps: GPUBuffer[] = [];
  private unsubmitted = 0;
  /** Buffers released while commands reading them were recorded: destroyed after the submit. */
  private doomed: GPUBuffer[] = [];
  private readonly pool: BufferPool;
  private readonly poison: boolean;
  /** Buffers handed out from the pool instead of created (benches and tests). */
  reused = 0;
  /** Reused buffers cleared (init 'zero'), since creation (benches and tests). */
  cleared = 0;
  private scratches = new Map<string, GPUBuffer>();
  private passTimestamps: GPUComputePassTimestampWrites | undefined;
  private errors: string[] = [];
  /** Dispatches recorded since creation (for benches and tests). */
  dispatches = 0;
  /** When set, run() and submit() add their host time per phase here (benches). */
  profile: DispatchProfile | undefined;
  /** The step tape being recorded (./step-tape.ts), and the count of buffer or command changes made outside one. */
  private tape: TapeRecorder | undefined;
  private epoch = 0;
  private onesBuffer: GPUBuffer | undefined;
  /**
   * The tensor-core GEMM's options (./gemm-f16.ts) where the device has
   * 'chromium-experimental-subgroup-matrix' and the caller probed it: precision 'f16' GEMMs run
   * on it (./gemm-mixed.ts); absent, they run gemm_f32 with operands rounded to half.
   */
  f16Matrix?: F16Options;

  constructor(readonly device: GPUDevice, options: GpuContextOptions = {}) {
    this.log = options.log ?? new AllocationLog();
    const has = device.features.has('subgroups');
    if (options.subgroups && !has) fail('usage', "GpuContext: subgroups requested but the device lacks the 'subgroups' feature");
    this.subgroups = options.subgroups ?? has;
    this.pool = new BufferPool(options.poolBytes ?? 0);
    this.poison = options.poison ?? poisonFromEnv();
    this.ring = new UniformRing(device, this.log);
    this.groups = new BindGroupCache(device);
    device.addEventListener?.('uncapturederror', (e) => this.errors.push((e as GPUUncapturedErrorEvent).error.message));
  }

  /**
   * A padded, logged storage buffer (STORAGE | COPY_SRC | COPY_DST): new (zeros), or a released one
   * of the same size (poolBytes), cleared unless `init` is 'any'.
   */
  buffer(label: string, bytes: number, init: BufferInit = 'zero'): GPUBuffer {
    this.touch();
    const size = padTo16(bytes);
    let b = this.pool.enabled ? this.pool.take(size) : undefined;
    if (b) {
      this.reused++;
      if (init === 'zero') {
        this.clear(b);
        this.cleared++;
        if (this.profile) this.profile.clears++;
      } else if (this.poison) this.run(fillNaNProgram(b.size / 4), [b]);
    } else {
      b = this.timedAlloc(() => createBuffer(this.device, this.log, label, bytes));
      this.pool.own(b);
    }
    this.pool.handedOut(size, b);
    return b;
  }

  /**
   * Hand back a buffer whose last reader is recorded: kept for reuse when it came from buffer() and
   * the pool has room (commands recorded later run after those that read it: same queue), else
   * destroyed — at once when nothing is recorded, else after the next submit (a submit that uses a
   * destroyed buffer fails), so a buffer may be handed back right after its last reader is recorded.
   */
  release(b: GPUBuffer): void {
    this.touch();
    // Released twice (two names for one value): handing it out twice would alias two values.
    if (this.pool.has(b)) return;
    if (!this.pool.put(b)) this.destroyAfterRecorded(b);
  }

  /**
   * While held (a training step: StagedSteps.run), every released buffer of ours is kept whatever
   * its size, each request gets the buffer its counterpart got in the last step, and letting go
   * keeps the step's working set and trims the rest to poolBytes (./buffer-pool.ts).
   */
  holdPool(on: boolean): void {
    this.touch();
    for (const b of this.pool.hold(on)) this.destroyAfterRecorded(b);
  }

  /** Destroy `b` now, or after the next submit while recorded commands may read it. */
  private destroyAfterRecorded(b: GPUBuffer): void {
    this.tape?.destroy(b);
    if (this.encoder) this.doomed.push(b);
    else b.destroy();
  }

  /** Dispatches recorded since the last submit. */
  get pending(): number {
    return this.unsubmitted;
  }

  /** Destroy every pooled buffer. */
  drainPool(): void {
    this.touch();
    for (const b of this.pool.drain()) b.destroy();
  }

  /**
   * A buffer from buffer() (pooled: within a training step the same one every step) holding
   * `data`, written through the queue. What was recorded so far is submitted first, so the write
   * lands after every command that may read the buffer's earlier contents and before those
   * recorded later.
   */
  write(label: string, data: HostArray | Uint8Array, key = label): GPUBuffer {
    const b = this.buffer(label, data.byteLength, 'any');
    this.submit();
    // writeBuffer takes multiples of 4 bytes.
    const bytes = padded4(data);
    this.device.queue.writeBuffer(b, 0, bytes);
    this.tape?.push({ kind: 'write', key, buffer: b, bytes: bytes.byteLength });
    return b;
  }

  /** A buffer of at least `n` float32 ones, kept for the context's life (grown when a bigger one is asked for). */
  ones(n: number): GPUBuffer {
    if (this.onesBuffer && this.onesBuffer.size >= n * 4) return this.onesBuffer;
    if (this.onesBuffer) this.destroyAfterRecorded(this.onesBuffer);
    return (this.onesBuffer = this.upload('ones', new Float32Array(n).fill(1)));
  }

  /** A padded, logged storage buffer holding `data`. */
  upload(label: string, data: HostArray): GPUBuffer {
    return this.timedAlloc(() => uploadBuffer(this.device, this.log, label, data));
  }

  private timedAlloc(create: () => GPUBuffer): GPUBuffer {
    if (!this.profile) return create();
    const t = performance.now();
    const b = create();
    this.profile.alloc += performance.now() - t;
    this.profile.buffersCreated++;
    return b;
  }

  /** A buffer destroyed right after the next submit (kernel scratch). */
  temp(label: string, bytes: number, init: BufferInit = 'zero'): GPUBuffer {
    const b = this.buffer(label, bytes, init);
    this.temps.push(b);
    return b;
  }

  /**
   * Scratch shared by every use of `label` until the next submit: reused when big enough (the
   * dispatches that use it run in order), else replaced by a bigger temp. A chunk loop that needs
   * scratch per chunk thus holds one buffer, not one per chunk.
   */
  scratch(label: string, bytes: number, init: BufferInit = 'zero'): GPUBuffer {
    const have = this.scratches.get(label);
    if (have && have.size >= bytes) return have;
    const b = this.temp(label, bytes, init);
    this.scratches.set(label, b);
    return b;
  }

  /** Record one dispatch of `program` with `buffers` bound in the order of its bindings. */
  run(program: Program, buffers: readonly GPUBuffer[]): void {
    const prof = this.profile;
    let t = prof ? performance.now() : 0;
    const lap = (phase: 'check' | 'pipeline' | 'uniforms' | 'bindGroup' | 'pass') => {
      const now = performance.now();
      prof![phase] += now - t;
      t = now;
    };
    if (buffers.length !== program.bindings.length)
      fail('usage', `${program.name}: ${buffers.length} buffers for ${program.bindings.length} bindings (${program.bindings.map((b) => b.name).join(', ')})`);
    program.bindings.forEach((b, i) => {
      if (b.access === 'read_write' && buffers.some((o, j) => j !== i && o === buffers[i]))
        fail('usage', `${program.name}: '${b.name}' is written and also bound as another input (WebGPU forbids aliasing a writable binding)`);
    });
    if (program.dispatch.some((d) => d === 0)) return;
    this.touch();
    if (prof) lap('check');
    const { pipeline, layout } = getPipeline(this.device, program);
    if (prof) lap('pipeline');
    // A full ring goes to the GPU with what was recorded so far (temporaries stay until submit()).
    if (this.ring.full) this.flushCommands(true);
    const offset = this.ring.write(program.uniforms);
    if (prof) lap('uniforms');
    const made = this.groups.created;
    const group = this.groups.get(layout, program.name, this.ring.buffer, uniformStructBytes(program.uniforms.length), buffers);
    if (prof) (lap('bindGroup'), (prof.groupsCreated += this.groups.created > made ? 1 : 0));
    const pass = this.computePass();
    if (this.passPipeline !== pipeline) pass.setPipeline((this.passPipeline = pipeline));
    pass.setBindGroup(0, group, [offset]);
    pass.dispatchWorkgroups(program.dispatch[0], program.dispatch[1], program.dispatch[2]);
    const [x, y, z] = program.dispatch;
    this.tape?.push({ kind: 'dispatch', name: program.name, pipeline, group, offset, x, y, z, buffers });
    this.dispatches++;
    this.unsubmitted++;
    if (prof) (lap('pass'), prof.dispatches++, (prof.byProgram[program.name] = (prof.byProgram[program.name] ?? 0) + 1));
  }

  /** Bind groups made and reused so far (tests and benches). */
  get bindGroupStats(): { created: number; hits: number } {
    return { created: this.groups.created, hits: this.groups.hits };
  }

  /** Record a buffer-to-buffer copy (byte offsets and size multiples of 4). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.touch();
    this.tape?.push({ kind: 'copy', src, srcOffset, dst, dstOffset, bytes });
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Record zero-filling of a buffer range. */
  clear(buffer: GPUBuffer, offset = 0, bytes?: number): void {
    this.touch();
    this.tape?.push({ kind: 'clear', buffer, offset, bytes });
    this.endPass();
    this.commandEncoder().clearBuffer(buffer, offset, bytes);
  }

  /**
   * Put what is recorded from here until the next `timestamps(undefined)` (or copy/clear, which
   * end the pass) in one compute pass whose GPU begin/end times go to `writes` (./timing.ts).
   */
  timestamps(writes: GPUComputePassTimestampWrites | undefined): void {
    this.tape?.break('timestamp queries');
    this.endPass();
    this.passTimestamps = writes;
  }

  /** Submit what was recorded; frees temporaries once the GPU is done with them. */
  submit(): void {
    this.flush(true);
  }

  /**
   * Drop what was recorded without running it (benches time recording on devices that could not
   * run the kernels): the same host work as submit() but the command buffer is never queued.
   */
  discard(): void {
    this.flush(false);
  }

  private flush(queue: boolean): void {
    if (!this.encoder) return;
    if (!queue) this.tape?.break('commands dropped (discard)');
    const t0 = this.profile ? performance.now() : 0;
    this.flushCommands(queue);
    for (const t of this.temps) this.release(t);
    this.temps = [];
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
    this.scratches.clear();
    if (this.profile) (this.profile.submit += performance.now() - t0, this.profile.submits++);
  }

  /** Queue (or drop) the recorded commands after their uniforms; temporaries are untouched. */
  private flushCommands(queue: boolean): void {
    if (!this.encoder) return;
    this.endPass();
    const commands = this.encoder.finish();
    this.encoder = undefined;
    this.unsubmitted = 0;
    this.tape?.push({ kind: 'submit', uniforms: this.ring.pending() });
    this.ring.upload(this.device.queue);
    if (queue) this.device.queue.submit([commands]);
  }

  /** Record the commands from here to endTape() as a step tape (./step-tape.ts); what is recorded so far is submitted first. */
  startTape(): void {
    this.submit();
    this.tape = new TapeRecorder();
  }

  /** The tape recorded since startTape(), or why it cannot be replayed. Everything recorded must have been submitted. */
  endTape(): StepTape | string {
    const rec = this.tape;
    this.tape = undefined;
    if (!rec) return 'no tape was being recorded';
    if (this.encoder) (rec.break('commands were left unsubmitted at the end of the step'), this.submit());
    return rec.finish(this.epoch);
  }

  /** Whether nothing changed the context's buffers or commands since `tape` was recorded (or last replayed). */
  tapeValid(tape: StepTape): boolean {
    return !this.tape && !this.encoder && tape.epoch === this.epoch;
  }

  /** Send a valid tape's commands again (replayTape), with `data(key)` for its host writes. */
  replay(tape: StepTape, data: (key: string) => ArrayBufferView): void {
    if (!this.tapeValid(tape)) fail('usage', 'GpuContext.replay: the tape is stale (buffers or commands changed since it was recorded)');
    const t0 = this.profile ? performance.now() : 0;
    replayTape(this.device, this.ring.buffer, tape, data);
    this.dispatches += tape.dispatches;
    if (this.profile) countReplay(this.profile, tape, performance.now() - t0);
  }

  /** Outside a tape's recording, a change to buffers or commands makes earlier tapes stale. */
  private touch(): void {
    if (!this.tape) this.epoch++;
  }

  /** Submit what is recorded, then destroy the uniform ring (the context may still be used: it makes a new one). */
  destroy(): void {
    this.submit();
    this.drainPool();
    this.onesBuffer?.destroy();
    this.onesBuffer = undefined;
    this.ring.destroy();
  }

  /** Submit and wait for the queue; throws the first WebGPU validation error seen since the last sync. */
  async sync(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    if (this.errors.length) {
      const msg = this.errors.join('\n');
      this.errors = [];
      fail('runtime', `WebGPU error: ${msg}`);
    }
  }

  /** Submit, then copy `bytes` (default all) of `buffer` back to the host. */
  async read(buffer: GPUBuffer, bytes = buffer.size): Promise<ArrayBuffer> {
    await this.sync();
    return readBuffer(this.device, this.log, buffer, bytes);
  }

  async readF32(buffer: GPUBuffer, count: number): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, count * 4));
  }

  private commandEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'ortfuse' }));
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.pass = this.commandEncoder().beginComputePass(this.passTimestamps ? { timestampWrites: this.passTimestamps } : {});
      this.passTimestamps = undefined; // one pass per request: a later pass must not overwrite them
    }
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
    this.passPipeline = undefined;
  }
}
