/**
 * Gradient accumulation (--grad-accum): micro-batches weighted by their count of target tokens
 * give the loss and gradients of the concatenated batch, also when labels hold ignore_index
 * (-100) in different amounts per micro-batch (an unweighted mean of the micro-batch losses would
 * not); and a run of 2 micro-batches of 2 follows a run of batches of 4 on the same windows.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import type { Batch } from '../src/data/batches.js';
import { prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer, IGNORE_INDEX, targetTokens } from '../src/runtime/trainer.js';
import { runTraining } from '../src/runtime/train.js';
import { relL2 } from './numerics.js';

const B = 4, T = 32;


/** Rows of text with -100 in different amounts per row: none, half, all but 3, the first 10. */
function batchWithIgnored(): Batch {
  const bytes = new TextEncoder().encode(mobyDick().slice(5000, 6000)).subarray(0, B * T);
  const inputIds = BigInt64Array.from(bytes, (x) => BigInt(x));
  const labels = inputIds.slice();
  for (let t = T / 2; t < T; t++) labels[1 * T + t] = IGNORE_INDEX;
  for (let t = 3; t < T; t++) labels[2 * T + t] = IGNORE_INDEX;
  for (let t = 0; t < 10; t++) labels[3 * T + t] = IGNORE_INDEX;
  return { inputIds, labels, batch: B, seq: T };
}

const rows = (b: Batch, from: number, to: number): Batch => ({
  inputIds: b.inputIds.slice(from * T, to * T), labels: b.labels.slice(from * T, to * T), batch: to - from, seq: T,
});

describe('gradient accumulation', () => {
  it.each([true, false])('fuse=%s: micro-batches weighted by target tokens equal one batch with ignore_index', async (fuse) => {
    const prepared = prepareTraining(buildQwen2(TINY, { seed: 3 }), { fuse });
    const opts = { optimizer: { lr: 1e-3 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 1 } };
    const trainer = await CpuTrainer.create(prepared.train, prepared.initial, opts);
    try {
      const big = batchWithIgnored();
      const [a, b] = [rows(big, 0, 2), rows(big, 2, 4)];
      expect([targetTokens(a), targetTokens(b), targetTokens(big)]).toEqual([31 + 15, 2 + 22, 31 + 15 + 2 + 22]);
      const one = await trainer.lossAndGrads(big);
      const acc = await trainer.accumulate([a, b]);
      expect(Math.abs(acc.loss - one.loss) / one.loss).toBeLessThan(1e-5);
      for (const [name, g] of one.grads) expect(relL2(acc.grads.get(name)!, g), name).toBeLessThan(1e-5);
      // The unweighted mean of the two micro-batch gradients is measurably off: the weighting matters here.
      const [ga, gb] = [(await trainer.lossAndGrads(a)).grads, (await trainer.lossAndGrads(b)).grads];
      const name = [...one.grads.keys()].sort((x, y) => one.grads.get(y)!.length - one.grads.get(x)!.length)[0]; // the largest: the embedding
      const naive = ga.get(name)!.map((x, i) => (x + gb.get(name)![i]) / 2);
      expect(relL2(naive, one.grads.get(name)!)).toBeGreaterThan(1e-2);
    } finally {
      await trainer.release();
    }
  });

  it('a run with --grad-accum 2 --batch 2 follows a run with --batch 4 on the same windows', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 100_000);
    const base = { steps: 4, seq: 32, lr: 3e-3, seed: 7, fuse: true, warmup: 1 };
    const four = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, batch: 4 });
    const accum = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, batch: 2, gradAccum: 2 });
    for (let i = 0; i < four.length; i++) {
      expect(Math.abs(accum[i].loss - four[i].loss) / four[i].loss, `step ${i + 1}`).toBeLessThan(1e-4);
      expect(accum[i].lr).toBe(four[i].lr);
    }
  });

  it('a run with --grad-accum 2 stopped at step 2 and resumed is bit-identical to the uninterrupted run', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 100_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accum-'));
    const o = { steps: 5, batch: 2, seq: 32, lr: 3e-3, seed: 4, fuse: true, gradAccum: 2 };
    const full = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, o);
    const ck = path.join(dir, 'a.ckpt');
    await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, stopAfter: 2, checkpoint: ck });
    const rest = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, resume: ck });
    expect(rest.map((r) => r.step)).toEqual([3, 4, 5]);
    expect(rest.map((r) => r.loss)).toEqual(full.slice(2).map((r) => r.loss));
    await expect(runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, gradAccum: 4, resume: ck })).rejects.toThrow(/written with --grad-accum 2, this run has --grad-accum 4/);
  });
});
