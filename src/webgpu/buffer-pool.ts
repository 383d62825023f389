/// <reference types="@webgpu/types" />
/**
 * The storage buffers a GpuContext keeps for reuse instead of destroying them (./context.ts
 * `poolBytes`): released buffers by padded size, handed out again for a request of the same size.
 * The pool only decides which buffer goes where; the context creates, clears and destroys them
 * (a buffer the pool lets go may still be read by recorded commands).
 *
 * A training step asks for the same sizes in the same order every step. While a step holds the
 * pool (`hold(true)` … `hold(false)`): every released buffer is kept whatever the bound; the j-th
 * request of a size gets the buffer the j-th request of that size got in the last step when it is
 * free (plain LIFO reuse would permute them between steps, and every kernel bound to a new buffer
 * makes a new bind group); and letting go keeps what the step used — its working set, which the next
 * step asks for again — and trims only the rest to the bound.
 */
import { dispatch1d, type Program } from './program.js';
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private bytes = 0;
  /** Buffers of ours (made with poolable usage): only those are ever kept. */
  private readonly ours = new WeakSet<GPUBuffer>();
  private readonly kept = new WeakSet<GPUBuffer>();
  private holding = false;
  /** The buffers handed out by size, in request order, in this step and in the last one. */
  private stepGot = new Map<number, GPUBuffer[]>();
  private lastStepGot = new Map<number, GPUBuffer[]>();

  /** `limit`: bytes kept outside a step (0: no pool). */
  constructor(readonly limit: number) {}

  get enabled(): boolean {
    return this.limit > 0;
  }

  /** A buffer this context made that may be kept once released. */
  own(b: GPUBuffer): void {
    if (this.enabled) this.ours.add(b);
  }

  /** A kept buffer of `size` bytes, taken out of the pool, or undefined. */
  take(size: number): GPUBuffer | undefined {
    const free = this.free.get(size);
    if (!free?.length) return undefined;
    let at = free.length - 1;
    if (this.holding) {
      const want = this.lastStepGot.get(size)?.[this.stepGot.get(size)?.length ?? 0];
      const k = want && this.kept.has(want) ? free.lastIndexOf(want) : -1;
      if (k >= 0) at = k;
    }
    const b = free[at];
    free[at] = free[free.length - 1];
    free.pop();
    this.kept.delete(b);
    this.bytes -= b.size;
    return b;
  }

  /** Note `b` (taken or new) as handed out for a request of `size` bytes (step order). */
  handedOut(size: number, b: GPUBuffer): void {
    if (!this.holding) return;
    const got = this.stepGot.get(size);
    if (got) got.push(b);
    else this.stepGot.set(size, [b]);
  }

  /** Whether `b` is in the pool now (released twice: two names for one value). */
  has(b: GPUBuffer): boolean {
    return this.kept.has(b);
  }

  /** Keep `b`; false when it is not ours or, outside a step, over the bound: then the caller destroys it. */
  put(b: GPUBuffer): boolean {
    if (!this.ours.has(b) || (!this.holding && this.bytes + b.size > this.limit)) {
      this.ours.delete(b);
      return false;
    }
    this.bytes += b.size;
    this.kept.add(b);
    const free = this.free.get(b.size);
    if (free) free.push(b);
    else this.free.set(b.size, [b]);
    return true;
  }

  /** Start (true) or end (false) a step; ending returns the buffers trimmed (the caller destroys them). */
  hold(on: boolean): GPUBuffer[] {
    if (on === this.holding) return [];
    this.holding = on;
    if (on) {
      this.stepGot = new Map();
      return [];
    }
    this.lastStepGot = this.stepGot;
    const stepUsed = new Set<GPUBuffer>([...this.stepGot.values()].flat());
    let spare = 0;
    for (const free of this.free.values()) for (const b of free) if (!stepUsed.has(b)) spare += b.size;
    const trimmed: GPUBuffer[] = [];
    for (const [size, free] of this.free) {
      if (spare <= this.limit) break;
      for (let i = free.length - 1; i >= 0 && spare > this.limit; i--) {
        const b = free[i];
        if (stepUsed.has(b)) continue;
        free.splice(i, 1);
        this.kept.delete(b);
        this.ours.delete(b);
        this.bytes -= size;
        spare -= size;
        trimmed.push(b);
      }
      if (!free.length) this.free.delete(size);
    }
    return trimmed;
  }

  /** Empty the pool; returns what it held (the caller destroys them). */
  drain(): GPUBuffer[] {
    const all = [...this.free.values()].flat();
    for (const b of all) this.kept.delete(b);
    this.free.clear();
    this.bytes = 0;
    this.lastStepGot = new Map();
    return all;
  }
}

/** Fills `words` u32 words of its one binding with a quiet NaN (GpuContextOptions.poison). */
export function fillNaNProgram(words: number): Program {
  const groups = Math.ceil(words / 256);
  return {
    name: 'fill_nan', cacheKey: '', workgroupSize: [256],
    dispatch: dispatch1d(groups),
    uniforms: [{ name: 'n', type: 'u32', value: words }],
    bindings: [{ name: 'x', access: 'read_write', type: 'u32' }],
    source: () => ({ main: '  let i = flatWorkgroup(wid, nwg) * 256u + lidx;\n  if (i < u.n) { x[i] = 0x7fc00000u; }' }),
  };
}
