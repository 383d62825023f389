/**
 * A host sleep before waiting on a readback that the GPU reaches late (the trainer's per-step stats).
 *
 * dawn.node pumps Dawn's events by scheduling a `setImmediate` callback, a new JS function each
 * time, for as long as any mapAsync or onSubmittedWorkDone is pending. Awaited right after a step's
 * submit, that loop spins the host's main thread through the GPU's whole step. It also fills V8's
 * heap with callbacks whose native finalizers carry them into the old generation. The result is a
 * major GC every step or few, and a slow step wherever one lands (the tiny model on SwiftShader:
 * 129-203 ms of GC a step without the pacer, 7-86 with it: bench/results/readback-pacer-swiftshader-s15.md).
 *
 * The pacer sleeps on a timer for `fraction` of the shortest of the last `keep` waits, measured
 * from the call to the readback's end. The poll then starts near the end of the GPU's work. It
 * sleeps only once it has `keep` waits, so a warm-up step's shader compiles never set the sleep.
 * A wait that shrinks costs at most the sleep's overshoot once, and the shorter wait sets the next
 * sleep. Results are unchanged: only when the host starts waiting moves.
 */
/** The pacer's time source and timer (tests pass a fake one). */
export interface PacerClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const TIMERS: PacerClock = { now: () => performance.now(), sleep: (ms) => new Promise((done) => setTimeout(done, ms)) };

/** ORTFUSE_READBACK_PACER=off (Node, measurements only): the default pacer never sleeps, as before it existed. */
const OFF = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.ORTFUSE_READBACK_PACER === 'off';

export class ReadbackPacer {
  private readonly recent: number[] = [];

  constructor(private readonly fraction = OFF ? 0 : 0.75, private readonly keep = 3, private readonly clock: PacerClock = TIMERS) {}

  /** The next sleep in ms (0 until `keep` waits were measured). */
  get nap(): number {
    return this.recent.length < this.keep ? 0 : this.fraction * Math.min(...this.recent);
  }

  /** Await `wait()` (the readback) after the sleep; record how long the whole took. */
  async around<T>(wait: () => Promise<T>): Promise<T> {
    const t0 = this.clock.now();
    const nap = this.nap;
    if (nap >= 1) await this.clock.sleep(nap);
    const out = await wait();
    this.recent.push(this.clock.now() - t0);
    if (this.recent.length > this.keep) this.recent.shift();
    return out;
  }
}
