/// <reference types="@webgpu/types" />
/**
 * The trainer's use of the step tape (src/webgpu/step-tape.ts): each recorded training step of a
 * stage plan whose GPU work is all ours is recorded as a tape; once two consecutive recordings of
 * the same batch shape are identical, the following steps replay the last one — only the host
 * segments run again (ORT's CPU EP: the batch's index arithmetic), their outputs and the batch are
 * written into the buffers the tape names, and the recorded commands are encoded and submitted as
 * they were. Anything else done with the context between steps (an evaluation, gradients read for
 * a check) makes the tape stale: the next steps are recorded again until two agree.
 */
import type * as Ort from 'onnxruntime-web';
import { fail } from '../../errors.js';
import type { GpuContext } from '../../webgpu/context.js';
import { tapeDifference, type StepTape } from '../../webgpu/step-tape.js';
import { StagedSteps, type StepRunner } from './steps.js';

export class StepReplay {
  private last?: { key: string; tape: StepTape; verified: boolean };
  /** Why the last step was not a replay (undefined after a replay, 'off' when disabled); for benches and tests. */
  note?: string;

  constructor(private readonly ctx: GpuContext, private readonly runner: StepRunner, private readonly enabled: boolean) {
    if (!enabled) this.note = 'off';
  }

  /** The runner when steps may be taped and replayed: a stage plan with no GPU work of ORT's (StagedSteps.replayable), not under a probe. */
  private get staged(): StagedSteps | undefined {
    const r = this.runner;
    return this.enabled && r instanceof StagedSteps && r.replayable && !r.probe ? r : undefined;
  }

  /** Whether a step of this batch shape can be a replay now (a verified, still valid tape). */
  ready(key: string): boolean {
    return !!this.staged && !!this.last?.verified && this.last.key === key && this.ctx.tapeValid(this.last.tape);
  }

  /** Before recording a step: start its tape where steps may be replayed; returns whether it did. */
  begin(): boolean {
    if (!this.staged) return false;
    this.ctx.startTape();
    return true;
  }

  /** After a recorded step's last command and release: keep its tape, verified when it equals the last one of this shape. */
  end(key: string): void {
    const made = this.ctx.endTape();
    if (typeof made === 'string') {
      this.last = undefined;
      this.note = `not replayable: ${made}`;
      return;
    }
    const diff = this.last?.key === key ? tapeDifference(this.last.tape, made) : 'first recording of this batch shape';
    this.last = { key, tape: made, verified: !diff };
    this.note = diff ? `recorded (${diff})` : 'recorded (the same as the step before: the next steps replay it)';
  }

  /** A recorded step failed: stop recording, drop the tape. */
  abort(): void {
    this.ctx.endTape();
    this.last = undefined;
  }

  /** Send the verified tape again with this step's feeds (the host segments run first, for the values it writes). */
  async replay(feeds: Record<string, Ort.Tensor>): Promise<void> {
    const runner = this.staged, tape = this.last?.tape;
    if (!runner || !tape) return fail('runtime', 'step replay: no verified step tape');
    const host = await runner.hostValues(feeds);
    const t0 = performance.now();
    this.ctx.replay(tape, (name) => (host[name]?.data as ArrayBufferView | undefined) ?? fail('runtime', `step replay: no host value '${name}' for this step`));
    const ms = performance.now() - t0;
    runner.times.replays++;
    runner.times.steps++;
    runner.times.replayMs += ms;
    runner.times.kernelMs += ms;
    this.note = undefined;
  }
}
