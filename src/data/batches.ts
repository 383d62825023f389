/**
 * Packing token ids into [B, T] training batches. The token stream is cut into windows of T
 * tokens; labels equal input_ids (the model shifts them, as HF causal-LM heads do). A held-out
 * tail of the stream is the validation split. Batch order is a seeded shuffle of the windows.
 */
import { fail } from '../errors.js';
export { rng } from '../random.js';
import { rng } from '../random.js';

export interface Batch {
  inputIds: BigInt64Array;
  labels: BigInt64Array;
  batch: number;
  seq: number;
}

export interface Dataset {
  train: number[];
  validation: number[];
}

/** Split a token stream: the last `fraction` (at least one window) is held out for validation. */
export function split(ids: number[], seq: number, fraction = 0.05): Dataset {
  const need = 2 * seq;
  if (ids.length < need) fail('usage', `the text has ${ids.length} tokens; at least ${need} are needed for seq ${seq} (one training and one validation window)`);
  const held = Math.max(seq, Math.floor(ids.length * fraction));
  return { train: ids.slice(0, ids.length - held), validation: ids.slice(ids.length - held) };
}

/** Check every id fits the model's vocabulary (before step 1, not as an ORT crash mid-run). */
export function checkVocab(ids: number[], vocab: number, tokenizer: string): void {
  let max = 0;
  for (const id of ids) if (id > max) max = id;
  if (max >= vocab)
    fail('usage', `tokenizer '${tokenizer}' emits id ${max}, but the model's vocabulary has only ${vocab} entries (use --tokenizer bytes for models with vocab ≥ 256, or a model with a larger vocabulary)`);
}

/** An endless, seeded stream of [B, T] batches over non-overlapping windows of `ids`. */
export function* batches(ids: number[], batch: number, seq: number, seed: number): Generator<Batch> {
  const windows = Math.floor(ids.length / seq);
  if (windows < 1) fail('usage', `not enough tokens (${ids.length}) for one window of ${seq}`);
  const rand = rng(seed);
  let order: number[] = [];
  for (;;) {
    const inputIds = new BigInt64Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      if (order.length === 0) {
        order = Array.from({ length: windows }, (_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [order[i], order[j]] = [order[j], order[i]];
        }
      }
      const w = order.pop()!;
      for (let t = 0; t < seq; t++) inputIds[b * seq + t] = BigInt(ids[w * seq + t]);
    }
    yield { inputIds, labels: inputIds.slice(), batch, seq };
  }
}
