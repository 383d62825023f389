/**
 * The fast version of bench/train-convergence.ts (acceptance 3): fused (RMSNorm, SwiGLU, RoPE,
 * linear-CE with in-forward gradients) and unfused training of the tiny Qwen2 on Moby Dick from the
 * same weights and batches agree within 1e-3 at every step, and both fall.
 */
import { describe, expect, it } from 'vitest';
import { convergence } from '../bench/train-convergence.js';

describe('fused vs unfused training (cpu backend, fp32)', () => {
  it('10 steps of the tiny Qwen2: losses agree within 1e-3 at every step and fall', async () => {
    const c = await convergence({ steps: 10, batch: 2, seq: 32, lr: 3e-3, seed: 5, warmup: 2, evalEvery: 0, evalBatches: 1 });
    expect(c.fusions).toEqual({ 'fuse-rms-norm': 5, 'fuse-swiglu': 2, 'fuse-rope': 4, 'fuse-linear-cross-entropy': 1 });
    expect(c.deltas).toHaveLength(10);
    for (const [i, d] of c.deltas.entries()) expect(d, `step ${i + 1}`).toBeLessThan(1e-3);
    expect(c.fused[9].loss).toBeLessThan(c.fused[0].loss - 1);
    expect(c.unfused[9].loss).toBeLessThan(c.unfused[0].loss - 1);
  });
});
