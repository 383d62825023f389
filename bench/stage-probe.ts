/**
 * Where a staged training step's time goes (issue 12, bench/train-step-webgpu.ts --profile): a
 * StageProbe for one step that waits for the GPU after every stage. Per ORT segment: host ms until
 * `run` resolved, then ms until the queue drained (the GPU work the host had not covered). Per our
 * kernel (by op): GPU ms from timestamp queries when ORT-web's device has 'timestamp-query', else
 * the wait after each kernel group. Waiting serialises host and GPU, so the profiled step is
 * slower than a normal one: it says where time goes, the normal steps say how fast.
 */
import type { GpuContext } from '../src/webgpu/context.js';
import { GpuTimer } from '../src/webgpu/timing.js';
import type { StageProbe } from '../src/runtime/webgpu/steps.js';
import type { KernelCall } from '../src/ops/kernel.js';

export interface StepProfile {
  ortRuns: number;
  ortHostMs: number;
  ortWaitMs: number;
  /** The 5 segments with the most host + wait ms: [segment, host ms, wait ms]. */
  topSegments: [number, number, number][];
  kernelCalls: number;
  /** GPU ms per kernel op (timestamps), or undefined without 'timestamp-query'. */
  kernelGpuMs?: Record<string, number>;
  kernelWaitMs: number;
  dispatches: number;
}

const add = <K>(m: Map<K, number>, k: K, v: number) => m.set(k, (m.get(k) ?? 0) + v);

export class StepProfiler implements StageProbe {
  private readonly host = new Map<number, number>();
  private readonly wait = new Map<number, number>();
  private readonly gpu = new Map<string, number>();
  private readonly timer?: GpuTimer;
  private calls = 0;
  private waitKernels = 0;
  private readonly dispatches0: number;

  constructor(private readonly ctx: GpuContext) {
    if (ctx.device.features.has('timestamp-query')) this.timer = new GpuTimer(ctx, 2048);
    this.dispatches0 = ctx.dispatches;
  }

  async afterOrt(segment: number, hostMs: number): Promise<void> {
    const t = performance.now();
    await this.ctx.device.queue.onSubmittedWorkDone();
    add(this.host, segment, hostMs);
    add(this.wait, segment, performance.now() - t);
  }

  beforeKernel(call: KernelCall): void {
    this.calls++;
    this.timer?.begin(call.op);
  }

  async afterGroup(): Promise<void> {
    const t = performance.now();
    if (this.timer) {
      this.timer.end();
      for (const [k, v] of await this.timer.read()) add(this.gpu, k, v);
    } else await this.ctx.device.queue.onSubmittedWorkDone();
    this.waitKernels += performance.now() - t;
  }

  result(): StepProfile {
    const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    const segs = [...this.host.keys()].map((s): [number, number, number] => [s, this.host.get(s)!, this.wait.get(s) ?? 0]);
    segs.sort((a, b) => b[1] + b[2] - a[1] - a[2]);
    this.timer?.destroy();
    return {
      ortRuns: this.host.size, ortHostMs: sum(this.host), ortWaitMs: sum(this.wait), topSegments: segs.slice(0, 5),
      kernelCalls: this.calls, kernelGpuMs: this.timer ? Object.fromEntries(this.gpu) : undefined, kernelWaitMs: this.waitKernels,
      dispatches: this.ctx.dispatches - this.dispatches0,
    };
  }
}
