/**
 * LoRA settings (`ortfuse train --lora r=16,alpha=32,dropout=0,targets=q,k,v,o,gate,up,down`, or
 * `createTrainer(model, { lora: { r: 16, alpha: 32, targets: ['q', 'v'] } })`), checked before any
 * work: one usage error naming the key. Defaults are PEFT's LoraConfig's (alpha 8, dropout 0) except
 * the targets: all seven projections of a Qwen2/Llama block. No `node:` imports (the page bundles it).
 */
import { fail } from '../errors.js';

/** Short target names → the module-name suffix the exporter records (`model.layers.0.self_attn.q_proj`). */
export const LORA_SHORT_TARGETS: Readonly<Record<string, string>> = {
  q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', gate: 'gate_proj', up: 'up_proj', down: 'down_proj',
};

/** The option as the library takes it. */
export interface LoraOptions {
  /** Rank of A [r, in] and B [out, r] (default 8; with `init`: the adapter's). */
  r?: number;
  /** Scale s = alpha / r of the adapter's output (default 8; with `init`: the adapter's). */
  alpha?: number;
  /** Dropout on the adapter's input: only 0 (dropout > 0 is refused, see resolveLora). */
  dropout?: number;
  /**
   * Modules that get adapters: short names (q k v o gate up down → `*.q_proj` …) or globs on torch
   * module names (`model.layers.1*.mlp.*`). Default: all seven; with `init`: the adapter's modules.
   */
  targets?: string[];
  /** Seed of A's kaiming-uniform init (default 0). */
  seed?: number;
  /** Start from an existing PEFT adapter: its adapter_model.safetensors and adapter_config.json. */
  init?: Map<string, Uint8Array>;
  /** base_model_name_or_path written into adapter_config.json (default: the model file's name, or null). */
  baseModel?: string;
}

export interface ResolvedLora {
  r: number;
  alpha: number;
  dropout: number;
  /** Globs on module names (short names expanded). */
  targets: string[];
  /** Which of r, alpha, targets were given (not defaulted): with `init`, the adapter's decide the rest. */
  given: { r: boolean; alpha: boolean; targets: boolean };
  seed: number;
  init?: Map<string, Uint8Array>;
  baseModel?: string;
}

const KEYS = ['r', 'alpha', 'dropout', 'targets', 'seed'];

/** `r=16,alpha=32,dropout=0,targets=q,k,v` → options (a bare name after `targets=` continues the list). */
export function parseLoraSpec(spec: string): LoraOptions {
  if (typeof spec !== 'string' || spec.trim() === '') fail('usage', `--lora expects settings like 'r=16,alpha=32,dropout=0,targets=q,k,v,o,gate,up,down' (got '${spec}')`);
  const o: Record<string, unknown> = {};
  let key: string | undefined;
  for (const raw of spec.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (key !== 'targets') fail('usage', `--lora '${spec}': '${part}' is not key=value (keys: ${KEYS.join(', ')}; only targets takes a comma list)`);
      (o.targets as string[]).push(part);
      continue;
    }
    key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!KEYS.includes(key)) fail('usage', `--lora '${spec}': unknown key '${key}' (keys: ${KEYS.join(', ')})`);
    if (key in o) fail('usage', `--lora '${spec}': '${key}' is given twice`);
    if (key === 'targets') o.targets = value === '' ? [] : [value];
    else {
      const n = Number(value);
      if (value === '' || !Number.isFinite(n)) fail('usage', `--lora '${spec}': ${key} must be a number (got '${value}')`);
      o[key] = n;
    }
  }
  return o as LoraOptions;
}

/** Check the option (string or object) and fill in the defaults. */
export function resolveLora(v: string | LoraOptions): ResolvedLora {
  const o = typeof v === 'string' ? parseLoraSpec(v) : v;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) fail('usage', 'option lora must be a string like \'r=16,alpha=32\' or an object { r, alpha?, dropout?, targets? }');
  const known = [...KEYS, 'init', 'baseModel'];
  for (const k of Object.keys(o)) if (!known.includes(k)) fail('usage', `option lora: unknown key '${k}' (keys: ${known.join(', ')})`);
  const { r = 8, alpha = 8, dropout = 0, seed = 0 } = o;
  if (!Number.isInteger(r) || r < 1) fail('usage', `lora r must be an integer ≥ 1 (got ${String(r)})`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) fail('usage', `lora alpha must be a number > 0 (got ${String(alpha)})`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) fail('usage', `lora dropout must be a number in [0, 1) (got ${String(dropout)})`);
  if (dropout > 0) fail('unsupported', `lora dropout ${dropout}: dropout on the adapter input is not implemented (ortfuse has no seeded Dropout gradient yet); use dropout=0`);
  if (!Number.isInteger(seed)) fail('usage', `lora seed must be an integer (got ${String(seed)})`);
  if (o.targets !== undefined && (!Array.isArray(o.targets) || o.targets.length === 0 || o.targets.some((t) => typeof t !== 'string' || t === '')))
    fail('usage', `lora targets must be a non-empty list of short names (${Object.keys(LORA_SHORT_TARGETS).join(' ')}) or globs on module names (got ${JSON.stringify(o.targets)})`);
  if (o.init !== undefined && !(o.init instanceof Map)) fail('usage', 'lora init must be a Map of file name → bytes (adapter_model.safetensors, adapter_config.json)');
  if (o.baseModel !== undefined && typeof o.baseModel !== 'string') fail('usage', 'lora baseModel must be a string');
  const targets = (o.targets ?? Object.keys(LORA_SHORT_TARGETS)).map((t) => (LORA_SHORT_TARGETS[t] ? `*.${LORA_SHORT_TARGETS[t]}` : t));
  return { r, alpha, dropout, targets, given: { r: o.r !== undefined, alpha: o.alpha !== undefined, targets: o.targets !== undefined }, seed, init: o.init, baseModel: o.baseModel };
}
