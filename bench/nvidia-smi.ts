/**
 * GPU memory in use per nvidia-smi, for the benches that run a child process per configuration:
 * the idle reading before it and the peak sampled every 50 ms while it runs (NaN without
 * nvidia-smi, e.g. SwiftShader smoke runs).
 */
import { execFileSync, spawn } from 'node:child_process';

/** GPU memory in use now (MiB), or NaN where there is no nvidia-smi. */
export function gpuUsedMiB(): number {
  try {
    return Number(execFileSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits']).toString().trim().split('\n')[0]);
  } catch {
    return NaN;
  }
}

/** Start sampling; `stop()` ends it and returns the peak minus the idle reading (MiB). */
export function samplePeak(): { stop(): number } {
  const idle = gpuUsedMiB();
  let peak = idle;
  const smi = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '50']);
  smi.on('error', () => undefined);
  smi.stdout.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) peak = Math.max(peak, Number(l)); });
  return { stop: () => (smi.kill(), peak - idle) };
}
