import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';

const base: TrainOptions = { steps: 12, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: false, warmup: 2 };

describe('training on the cpu backend', () => {
  it('trains the tiny Qwen2 on Moby Dick: the loss falls and the same seed gives the same losses', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 200_000);
    const a = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, base);
    const b = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, base);
    expect(a.map((r) => r.loss)).toEqual(b.map((r) => r.loss));
    expect(a[0].loss).toBeGreaterThan(5.5);
    expect(a[a.length - 1].loss).toBeLessThan(a[0].loss - 1.5);
    expect(a[a.length - 1].valLoss).toBeLessThan(a[0].loss - 1);
  });

  it('resumes from a checkpoint to a bit-identical next step', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 100_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-'));
    const full = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...base, steps: 6 });
    // A run stopped at step 3 and resumed: same schedule (steps: 6), so steps 4..6 must match exactly.
    const part = path.join(dir, 'p.ckpt');
    await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...base, steps: 6, stopAfter: 3, checkpoint: part });
    const rest = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...base, steps: 6, resume: part });
    expect(rest.map((r) => r.step)).toEqual([4, 5, 6]);
    expect(rest.map((r) => r.loss)).toEqual(full.slice(3).map((r) => r.loss));
  });

  it('rejects a tokenizer whose ids exceed the model vocabulary before step 1', async () => {
    const tok = await getTokenizer('qwen');
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), mobyDick().slice(0, 5000), tok, base)).rejects.toThrow(/emits id \d+, but the model's vocabulary has only 512/);
  });
});
