import { describe, expect, it } from 'vitest';
import { batches, checkVocab, split } from '../src/data/batches.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';

describe('training data', () => {
  it('tokenizes Moby Dick with the Qwen2 vocabulary and decodes it back', async () => {
    const tok = await getTokenizer('qwen');
    expect(tok.vocabSize).toBeGreaterThan(151_000);
    const all = mobyDick();
    const text = all.slice(all.indexOf('Call me Ishmael'), all.indexOf('Call me Ishmael') + 20_000);
    expect(text).toContain('Ishmael');
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(3000);
    expect(ids.length).toBeLessThan(text.length);
    expect(tok.decode(ids)).toBe(text);
  });

  it('bytes tokenizer maps UTF-8 bytes to ids 0-255', async () => {
    const tok = await getTokenizer('bytes');
    expect(tok.encode('aé')).toEqual([97, 0xc3, 0xa9]);
    expect(tok.decode(tok.encode('Call me Ishmael.'))).toBe('Call me Ishmael.');
  });

  it('rejects ids beyond the model vocabulary before training', () => {
    expect(() => checkVocab([1, 2, 600], 512, 'qwen')).toThrow(/emits id 600.*only 512/);
    expect(() => checkVocab([1, 2, 511], 512, 'bytes')).not.toThrow();
  });

  it('packs seeded, reproducible batches with a held-out split', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i % 251);
    const ds = split(ids, 16, 0.1);
    expect(ds.validation.length).toBe(100);
    expect(ds.train.length + ds.validation.length).toBe(1000);
    const a = batches(ds.train, 4, 16, 7);
    const b = batches(ds.train, 4, 16, 7);
    const c = batches(ds.train, 4, 16, 8);
    const a1 = a.next().value!, b1 = b.next().value!, c1 = c.next().value!;
    expect(a1.inputIds).toEqual(b1.inputIds);
    expect(a1.inputIds).not.toEqual(c1.inputIds);
    expect(a1.labels).toEqual(a1.inputIds);
    // every row is a contiguous window of the stream
    for (let r = 0; r < 4; r++) {
      const row = Array.from(a1.inputIds.slice(r * 16, r * 16 + 16), Number);
      const start = ds.train.indexOf(row[0]);
      expect(start).toBeGreaterThanOrEqual(0);
      for (let t = 1; t < 16; t++) expect((row[t] - row[t - 1] + 251) % 251).toBe(1);
    }
    expect(() => split([1, 2, 3], 16)).toThrow(/at least 32/);
  });
});
