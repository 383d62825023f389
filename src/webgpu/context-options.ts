/** GpuContext's options and buffer kinds (./context.ts). */
import type { AllocationLog } from './buffers.js';

export interface GpuContextOptions {
  log?: AllocationLog;
  /** Use subgroup operations (default: when the device has the 'subgroups' feature). */
  subgroups?: boolean;
  /**
   * Keep up to this many bytes of released storage buffers for reuse by exact size instead of
   * destroying them (0 or absent: destroy), beyond a held step's working set, which is always kept
   * (./buffer-pool.ts). A training step asks for the same sizes every step: reuse saves the host's
   * buffer creation and what Dawn holds for destroyed buffers until the GPU passes them. A reused
   * buffer is cleared first, so it reads as a new one (zeros), unless asked for with init 'any'.
   */
  poolBytes?: number;
  /**
   * Fill every reused buffer handed out with `init: 'any'` with NaN instead of leaving its old
   * contents, so that a kernel reading an element of its output before writing it fails loudly
   * (tests; default: the environment variable ORTFUSE_POISON_REUSED=1 in Node).
   */
  poison?: boolean;
}

/**
 * What a buffer from GpuContext.buffer() holds: 'zero' = zeros (a reused one is cleared first);
 * 'any' = whatever it held (a reused one is not cleared): for outputs the kernel writes in full
 * before anything reads them. Clearing costs a command and ends the compute pass.
 */
export type BufferInit = 'zero' | 'any';
