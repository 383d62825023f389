/**
 * Batches for the training API: text → tokens → the same seeded [batch, seq] windows and held-out
 * validation batches as `ortfuse train` (src/runtime/train.ts), or batches from token rows.
 */
import { fail } from '../errors.js';
import { batches, checkVocab, split, type Batch } from '../data/batches.js';
import { getTokenizer, type Tokenizer } from '../data/tokenizer.js';

export interface TextBatchesOptions {
  /** 'qwen' (Qwen2's BPE), 'bytes' (UTF-8 bytes, ids 0-255) or a Tokenizer (default 'qwen'). */
  tokenizer?: 'qwen' | 'bytes' | Tokenizer;
  /** Sequences per batch (default 4). */
  batch?: number;
  /** Tokens per sequence (default 64). */
  seq?: number;
  /** Seed of the batch order (default 0; validation batches use seed + 1). */
  seed?: number;
  /** Validation batches taken from the held-out tail (default 2). */
  evalBatches?: number;
  /** Refuse ids ≥ vocab before training (pass `trainer.vocab`). */
  vocab?: number;
}

export interface TextBatches {
  tokenizer: Tokenizer;
  /** Tokens in the whole text. */
  tokens: number;
  /** An endless, seeded stream of training batches (the text minus its last 5%, at least one window). */
  train: Generator<Batch>;
  /** Batches of the held-out tail, for `trainer.evaluate`. */
  validation: Batch[];
}

const positiveInt = (v: number, name: string) => {
  if (!Number.isInteger(v) || v < 1) fail('usage', `${name} must be a positive integer (got ${v})`);
  return v;
};

/**
 * Tokenize `text` and cut it into training and validation batches exactly as `ortfuse train` does
 * with the same batch, seq and seed (so a library run reproduces the CLI's losses).
 */
export async function textBatches(text: string, o: TextBatchesOptions = {}): Promise<TextBatches> {
  if (typeof text !== 'string') fail('usage', `textBatches() takes the text as a string, not ${typeof text}`);
  const batch = positiveInt(o.batch ?? 4, 'batch');
  const seq = positiveInt(o.seq ?? 64, 'seq');
  if (seq < 2) fail('usage', `seq must be at least 2 (got ${seq})`);
  const seed = o.seed ?? 0;
  const tokenizer = typeof o.tokenizer === 'object' ? o.tokenizer : await getTokenizer(o.tokenizer ?? 'qwen');
  const ids = tokenizer.encode(text);
  if (o.vocab !== undefined) checkVocab(ids, o.vocab, tokenizer.name);
  const ds = split(ids, seq);
  const vs = batches(ds.validation, batch, seq, seed + 1);
  const validation: Batch[] = [];
  for (let i = 0; i < (o.evalBatches ?? 2); i++) validation.push(vs.next().value!);
  return { tokenizer, tokens: ids.length, train: batches(ds.train, batch, seq, seed), validation };
}

/**
 * A batch from token rows of equal length. `labels` default to the ids (the model shifts them, as
 * Hugging Face causal-LM heads do); -100 in labels marks tokens that add no loss.
 */
export function toBatch(rows: number[][], labels: number[][] = rows): Batch {
  if (!Array.isArray(rows) || rows.length === 0 || !Array.isArray(rows[0])) fail('usage', 'toBatch() takes a non-empty array of token rows');
  const seq = rows[0].length;
  if (labels.length !== rows.length) fail('usage', `toBatch(): ${rows.length} rows of ids but ${labels.length} rows of labels`);
  const inputIds = new BigInt64Array(rows.length * seq);
  const out = new BigInt64Array(rows.length * seq);
  rows.forEach((r, b) => {
    if (r.length !== seq || labels[b].length !== seq) fail('usage', `toBatch(): row ${b} has ${r.length} ids and ${labels[b].length} labels; every row needs ${seq}`);
    for (let t = 0; t < seq; t++) {
      if (!Number.isInteger(r[t]) || r[t] < 0) fail('usage', `toBatch(): row ${b}, position ${t}: ${r[t]} is not a token id`);
      inputIds[b * seq + t] = BigInt(r[t]);
      out[b * seq + t] = BigInt(labels[b][t]);
    }
  });
  return { inputIds, labels: out, batch: rows.length, seq };
}
