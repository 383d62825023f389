/**
 * Qwen2 model configurations, with Hugging Face's `config.json` field names, so a model's own
 * config file loads as is. Presets: `tiny` (the torch-exported fixture models/fixtures/qwen2-tiny)
 * and `0.5b` (Qwen2-0.5B).
 */
import * as fs from 'node:fs';
import { fail, OrtfuseError } from '../src/errors.js';

/** The fields of transformers' `Qwen2Config` that determine the graph. */
export interface Qwen2Config {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_position_embeddings: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  /** Only 'silu' is supported. */
  hidden_act: string;
  /** Defaults to hidden_size / num_attention_heads. */
  head_dim?: number;
  /** Qwen2 has biases on the q/k/v projections. */
  attention_bias?: boolean;
  /** The std of the normal initialisation of weights (HF default 0.02). */
  initializer_range: number;
}

/** The fixture config (models/fixtures/qwen2-tiny.json). */
export const TINY: Qwen2Config = {
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  initializer_range: 0.02,
};

/** Qwen2-0.5B (Qwen/Qwen2-0.5B config.json). */
export const QWEN2_0_5B: Qwen2Config = {
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 131072,
  rope_theta: 1000000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  initializer_range: 0.02,
};

/** Named presets accepted by `resolveConfig` and `models/generate.ts --config`. */
export const PRESETS: Record<string, Qwen2Config> = { tiny: TINY, '0.5b': QWEN2_0_5B };

const POSITIVE_INTS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'max_position_embeddings',
] as const;

/** Head dimension (explicit `head_dim` or hidden_size / num_attention_heads). */
export function headDim(c: Qwen2Config): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

/**
 * Validate a Qwen2Config-shaped object (e.g. a parsed HF config.json). Missing optional fields
 * get transformers' defaults; unknown fields are ignored. Throws a one-line `usage` error naming
 * the first bad field.
 */
export function parseConfig(raw: unknown, source = 'config'): Qwen2Config {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('usage', `${source}: expected a JSON object`);
  const r = raw as Record<string, unknown>;
  const bad = (field: string, why: string): never => fail('usage', `${source}: field '${field}' ${why}`);
  if (r.model_type !== undefined && r.model_type !== 'qwen2') bad('model_type', `is '${String(r.model_type)}', expected 'qwen2'`);
  for (const f of POSITIVE_INTS) {
    const v = r[f];
    if (v === undefined) {
      if (f === 'max_position_embeddings') continue;
      bad(f, 'is missing');
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) bad(f, `must be a positive integer, got ${JSON.stringify(v)}`);
  }
  const num = (f: string, dflt: number): number => {
    const v = r[f] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(f, `must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const c: Qwen2Config = {
    vocab_size: r.vocab_size as number,
    hidden_size: r.hidden_size as number,
    intermediate_size: r.intermediate_size as number,
    num_hidden_layers: r.num_hidden_layers as number,
    num_attention_heads: r.num_attention_heads as number,
    num_key_value_heads: r.num_key_value_heads as number,
    max_position_embeddings: (r.max_position_embeddings as number | undefined) ?? 32768,
    rope_theta: num('rope_theta', ropeThetaFromParameters(r) ?? 10000),
    rms_norm_eps: num('rms_norm_eps', 1e-6),
    tie_word_embeddings: (r.tie_word_embeddings ?? false) as boolean,
    hidden_act: (r.hidden_act ?? 'silu') as string,
    initializer_range: num('initializer_range', 0.02),
  };
  if (typeof c.tie_word_embeddings !== 'boolean') bad('tie_word_embeddings', `must be true or false, got ${JSON.stringify(r.tie_word_embeddings)}`);
  if (c.hidden_act !== 'silu') bad('hidden_act', `is ${JSON.stringify(r.hidden_act)}; only 'silu' is supported`);
  if (r.head_dim !== undefined && r.head_dim !== null) {
    if (typeof r.head_dim !== 'number' || !Number.isInteger(r.head_dim) || r.head_dim <= 0)
      bad('head_dim', `must be a positive integer, got ${JSON.stringify(r.head_dim)}`);
    c.head_dim = r.head_dim as number;
  } else if (c.hidden_size % c.num_attention_heads !== 0)
    bad('num_attention_heads', `(${c.num_attention_heads}) must divide hidden_size (${c.hidden_size})`);
  if (headDim(c) % 2 !== 0) bad('head_dim', `must be even for rotary embeddings, got ${headDim(c)}`);
  if (c.num_attention_heads % c.num_key_value_heads !== 0)
    bad('num_key_value_heads', `(${c.num_key_value_heads}) must divide num_attention_heads (${c.num_attention_heads})`);
  return c;
}

/** transformers 5 moved rope_theta into `rope_parameters`. */
function ropeThetaFromParameters(r: Record<string, unknown>): number | undefined {
  const p = r.rope_parameters ?? r.rope_scaling;
  if (p && typeof p === 'object') {
    const t = (p as Record<string, unknown>).rope_theta;
    if (typeof t === 'number') return t;
    const type = (p as Record<string, unknown>).rope_type ?? (p as Record<string, unknown>).type;
    if (type !== undefined && type !== 'default') fail('usage', `rope type ${JSON.stringify(type)} is not supported (only default RoPE)`);
  }
  return undefined;
}

/** Read and validate a Qwen2Config JSON file. */
export function loadConfigFile(file: string): Qwen2Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return fail('io', `${file}: cannot read config (${(e as NodeJS.ErrnoException).code ?? e})`, e);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail('usage', `${file}: not valid JSON (${(e as Error).message})`, e);
  }
  // Fixture files (<stem>.json) carry the config under "config".
  const obj = raw as Record<string, unknown>;
  if (obj && typeof obj === 'object' && obj.config && typeof obj.config === 'object' && obj.vocab_size === undefined) raw = obj.config;
  return parseConfig(raw, file);
}

/** A preset name (`tiny`, `0.5b`) or the path of a JSON config. */
export function resolveConfig(nameOrFile: string): Qwen2Config {
  const preset = PRESETS[nameOrFile.toLowerCase()];
  if (preset) return { ...preset };
  if (!fs.existsSync(nameOrFile))
    throw new OrtfuseError('usage', `unknown config '${nameOrFile}': not a preset (${Object.keys(PRESETS).join(', ')}) nor a file`);
  return loadConfigFile(nameOrFile);
}
