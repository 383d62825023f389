/**
 * The step memory estimate against the measurements it is calibrated on
 * (bench/results/train-step-0.5b.md: Qwen2-0.5B-shaped step on the cpu backend, peak RSS), and the
 * search for the largest batch shape that fits.
 */
import { describe, expect, it } from 'vitest';
import { buildQwen2Structure } from '../../models/qwen2.js';
import { QWEN2_0_5B } from '../../models/config.js';
import { qwen2Parameters } from '../../models/weights.js';
import { trainingGraph } from './session.js';
import { FROZEN_COPIES, frozenElements, largestFitting, memoryLimit, stepMemoryModel } from './memory-estimate.js';

const GiB = 2 ** 30;

describe('step memory estimate', () => {
  const params = qwen2Parameters(QWEN2_0_5B).reduce((s, p) => s + p.dims.reduce((a, b) => a * b, 1), 0);

  it('is within 10% of the measured 0.5B peaks and over the 21 GiB cap where the run was killed', () => {
    const measured: [boolean, number, number][] = [[true, 256, 15.15], [true, 384, 17.41], [true, 512, 19.26], [false, 256, 18.45]];
    const models = new Map([true, false].map((fuse) => [fuse, stepMemoryModel(trainingGraph(buildQwen2Structure(QWEN2_0_5B), { fuse }).train.graph, params)]));
    for (const [fuse, seq, gib] of measured) {
      const e = models.get(fuse)!.at(8, seq).bytes / GiB;
      expect(Math.abs(e - gib) / gib, `${fuse ? 'fused' : 'unfused'} 8x${seq}: ${e.toFixed(2)} GiB`).toBeLessThan(0.1);
    }
    expect(models.get(false)!.at(8, 384).bytes / GiB).toBeGreaterThan(21);
    expect(models.get(false)!.at(8, 384).largest.what).toMatch(/logits/);
  }, 60_000);

  it('counts the weights that do not train (--freeze, LoRA): the frozen base is in the estimate', () => {
    // Only the final norm trains: the other 494M floats stay initializers of the step graph.
    const g = trainingGraph(buildQwen2Structure(QWEN2_0_5B), { fuse: true, parameters: new Set(['model.norm.weight']) }).train.graph;
    const frozen = frozenElements(g);
    expect(frozen).toBeGreaterThan(params - 1000);
    const e = stepMemoryModel(g, 896).at(8, 256);
    expect(e.bytes).toBeGreaterThan(FROZEN_COPIES.cpu * 4 * frozen);
    expect(e.bytes - e.activationBytes * 1.5).toBeLessThan(FROZEN_COPIES.cpu * 4 * frozen + GiB);
  }, 60_000);

  it('largestFitting: the most sequences at the asked length, else the longest single sequence', () => {
    const m = { at: (b: number, t: number) => ({ bytes: b * t * t, activationBytes: 0, largest: { bytes: 0, what: '' } }) };
    expect(largestFitting(m, 100, 10, (e) => e.bytes <= 3000)).toEqual({ batch: 30, seq: 10 });
    expect(largestFitting(m, 100, 100, (e) => e.bytes <= 3000)).toEqual({ batch: 1, seq: 54 });
    expect(largestFitting(m, 100, 100, (e) => e.bytes <= 3)).toBeUndefined();
    expect(memoryLimit(100, 'max\n')).toBe(100);
    expect(memoryLimit(100, '60\n')).toBe(60);
  });
});
