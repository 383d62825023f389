import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OrtfuseError } from '../src/errors.js';
import { headDim, loadConfigFile, parseConfig, QWEN2_0_5B, resolveConfig, TINY } from './config.js';

const hfQwen2_05b = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643,
  hidden_act: 'silu', hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864,
  max_position_embeddings: 131072, max_window_layers: 24, model_type: 'qwen2', num_attention_heads: 14,
  num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
  sliding_window: 131072, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};

function usageError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(OrtfuseError);
    expect((e as OrtfuseError).code).toBe('usage');
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('Qwen2Config', () => {
  it('parses an HF config.json into the 0.5b preset', () => {
    expect(parseConfig(hfQwen2_05b)).toEqual(QWEN2_0_5B);
    expect(headDim(QWEN2_0_5B)).toBe(64);
  });

  it('resolves presets and files (including a fixture-style {config: ...} wrapper)', () => {
    expect(resolveConfig('tiny')).toEqual(TINY);
    expect(resolveConfig('0.5B').vocab_size).toBe(151936);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-cfg-'));
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ config: { ...TINY, extra_field: 1 } }));
    expect(loadConfigFile(file)).toEqual(TINY);
    expect(usageError(() => resolveConfig(path.join(dir, 'nope.json')))).toMatch(/unknown config .*nope\.json/);
  });

  it('models/configs/*.json are the presets, and the fixture configs equal the tiny preset', () => {
    const here = path.dirname(new URL(import.meta.url).pathname);
    expect(loadConfigFile(path.join(here, 'configs/qwen2-0.5b.json'))).toEqual(QWEN2_0_5B);
    expect(loadConfigFile(path.join(here, 'configs/qwen2-tiny.json'))).toEqual(TINY);
    expect(loadConfigFile(path.join(here, 'fixtures/qwen2-tiny.json'))).toEqual(TINY);
    expect(loadConfigFile(path.join(here, 'fixtures/qwen2-tiny-untied.json'))).toEqual({ ...TINY, tie_word_embeddings: false });
  });

  it('takes rope_theta from transformers 5 rope_parameters', () => {
    const { rope_theta: _, ...rest } = hfQwen2_05b;
    expect(parseConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }).rope_theta).toBe(5e5);
  });

  it.each([
    [{ hidden_size: undefined }, /field 'hidden_size' is missing/],
    [{ vocab_size: 0 }, /field 'vocab_size' must be a positive integer, got 0/],
    [{ num_attention_heads: 2.5 }, /field 'num_attention_heads' must be a positive integer/],
    [{ num_key_value_heads: 3 }, /field 'num_key_value_heads' \(3\) must divide num_attention_heads \(14\)/],
    [{ num_attention_heads: 5 }, /field 'num_attention_heads' \(5\) must divide hidden_size \(896\)/],
    [{ rms_norm_eps: -1 }, /field 'rms_norm_eps' must be a positive number/],
    [{ rope_theta: 'big' }, /field 'rope_theta' must be a positive number, got "big"/],
    [{ tie_word_embeddings: 'yes' }, /field 'tie_word_embeddings' must be true or false/],
    [{ hidden_act: 'gelu' }, /field 'hidden_act' is "gelu"; only 'silu'/],
    [{ model_type: 'llama' }, /field 'model_type' is 'llama', expected 'qwen2'/],
  ])('rejects %j naming the field', (patch, re) => {
    expect(usageError(() => parseConfig({ ...hfQwen2_05b, ...patch }, 'cfg.json'))).toMatch(re);
  });

  it('rejects non-objects and bad JSON with one-line errors', () => {
    expect(usageError(() => parseConfig([1, 2]))).toMatch(/expected a JSON object/);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-cfg-')), 'bad.json');
    fs.writeFileSync(file, '{"vocab_size": ');
    expect(usageError(() => loadConfigFile(file))).toMatch(/bad\.json: not valid JSON/);
  });
});
