/// <reference types="@webgpu/types" />
/**
 * How far the host may run ahead of the GPU in a staged step (./steps.ts awaits `after()` after
 * each ORT run and each kernel group it submits). Dawn frees a buffer handed back only once the GPU
 * has passed the commands that read it, so a host far ahead holds memory no value uses.
 */
import type { MemoryMeter } from './memory.js';

export class HostAhead {
  /**
   * How many submissions (ORT runs, kernel groups) the host may run ahead of the GPU (0: no bound):
   * waiting for the submission this many back keeps the unfreed memory bounded while the GPU still
   * has the newer ones queued. Set under a memory budget (src/runtime/memory-budget.ts
   * BUDGET_IN_FLIGHT).
   */
  inFlight = 0;
  private readonly submitted: Promise<unknown>[] = [];
  /**
   * The same bound by bytes instead of submissions (0: no bound): the host waits only when the
   * buffers released (destroy(), ORT's and ours, counted by `meter`) since the last submission
   * known finished exceed this many bytes — then for the oldest submissions that bring it back
   * under. Memory held beyond the live buffers stays below about this much, with far fewer waits
   * than a count bound when most submissions release little.
   */
  unfreedBytes = 0;
  /** The realm's GPU memory meter (./memory.ts): needed by `unfreedBytes`. */
  meter?: Pick<MemoryMeter, 'released'>;
  /** Submissions not yet known finished, with the bytes released before each; and the bytes released before the last finished one. */
  private readonly fences: { done: Promise<unknown>; released: number; finished: boolean }[] = [];
  private releasedDone = 0;
  /** Waits `unfreedBytes` made, and the most released bytes not known freed when the host went on (for benches and tests). */
  unfreedWaits = 0;
  unfreedPeak = 0;

  constructor(private readonly queue: GPUQueue) {}

  /** After a submission: wait until the GPU has finished the one `inFlight` submissions back, and/or until at most `unfreedBytes` released bytes may be unfreed. */
  async after(): Promise<void> {
    if (this.inFlight > 0) {
      this.submitted.push(this.queue.onSubmittedWorkDone());
      while (this.submitted.length > this.inFlight) await this.submitted.shift();
    }
    if (!(this.unfreedBytes > 0) || !this.meter) return;
    const released = this.meter.released;
    const fences = this.fences;
    // A new fence only once a quarter of the bound was released since the last one: few fences per step.
    const last = fences.length ? fences[fences.length - 1].released : this.releasedDone;
    if (released - last >= this.unfreedBytes / 4) {
      const f = { done: this.queue.onSubmittedWorkDone(), released, finished: false };
      void f.done.then(() => { f.finished = true; });
      fences.push(f);
    }
    for (;;) {
      while (fences.length && fences[0].finished) this.releasedDone = fences.shift()!.released;
      if (!fences.length || released - this.releasedDone <= this.unfreedBytes) {
        this.unfreedPeak = Math.max(this.unfreedPeak, released - this.releasedDone);
        return;
      }
      const f = fences.shift()!;
      this.unfreedWaits++;
      await f.done;
      this.releasedDone = f.released;
    }
  }
}
