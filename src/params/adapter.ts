/**
 * PEFT adapter files, as bytes (no `node:` imports: the page bundles it):
 * - adapter_model.safetensors: `base_model.model.<module>.lora_A.weight` [r, in] and
 *   `.lora_B.weight` [out, r], float32;
 * - adapter_config.json: peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout,
 *   target_modules, bias none, fan_in_fan_out false, base_model_name_or_path —
 * what `PeftModel.from_pretrained(model, dir)` loads (https://huggingface.co/docs/peft).
 */
import { fail } from '../errors.js';
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from './safetensors-bytes.js';
import type { LoraAdapters } from './lora.js';

export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_CONFIG = 'adapter_config.json';
const PREFIX = 'base_model.model.';

/** The two files of a PEFT LoRA adapter holding `trained`'s A and B. */
export function adapterFiles(ad: LoraAdapters, trained: ReadonlyMap<string, Float32Array>): Map<string, Uint8Array> {
  const tensors = new Map<string, NamedTensor>();
  for (const m of ad.modules) {
    const get = (n: string) => trained.get(n) ?? fail('invalid', `adapter: no value for '${n}'`);
    tensors.set(`${PREFIX}${m.module}.lora_A.weight`, { shape: [ad.r, m.in], data: get(m.a) });
    tensors.set(`${PREFIX}${m.module}.lora_B.weight`, { shape: [m.out, ad.r], data: get(m.b) });
  }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: ad.r,
    lora_alpha: ad.alpha,
    lora_dropout: ad.dropout,
    target_modules: ad.targetModules,
    bias: 'none',
    fan_in_fan_out: false,
    base_model_name_or_path: ad.baseModel,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
  };
  return new Map([
    [ADAPTER_WEIGHTS, encodeSafetensors(tensors, { format: 'pt', producer: 'ortfuse' })],
    [ADAPTER_CONFIG, new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)],
  ]);
}

export interface ReadAdapter {
  r: number;
  alpha: number;
  /** A [r, in] and B [out, r] by module name. */
  modules: Map<string, { a: NamedTensor; b: NamedTensor }>;
}

/** Read a PEFT LoRA adapter's two files (refused, naming the file, when it is not one ortfuse can start from). */
export function readAdapter(files: ReadonlyMap<string, Uint8Array>): ReadAdapter {
  const cfgBytes = files.get(ADAPTER_CONFIG) ?? fail('usage', `lora init: no ${ADAPTER_CONFIG} (got ${[...files.keys()].join(', ') || 'no files'})`);
  const wBytes = files.get(ADAPTER_WEIGHTS) ?? fail('usage', `lora init: no ${ADAPTER_WEIGHTS} (got ${[...files.keys()].join(', ')})`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(new TextDecoder().decode(cfgBytes));
  } catch (e) {
    return fail('parse', `lora init: ${ADAPTER_CONFIG} is not JSON (${(e as Error).message})`);
  }
  if (cfg.peft_type !== 'LORA') fail('unsupported', `lora init: ${ADAPTER_CONFIG} has peft_type ${JSON.stringify(cfg.peft_type)}; only LORA adapters are read`);
  const r = cfg.r, alpha = cfg.lora_alpha;
  if (typeof r !== 'number' || typeof alpha !== 'number') fail('parse', `lora init: ${ADAPTER_CONFIG} needs numbers r and lora_alpha`);
  for (const [k, ok] of [['use_dora', false], ['use_rslora', false], ['fan_in_fan_out', false]] as const)
    if (cfg[k] !== undefined && cfg[k] !== ok) fail('unsupported', `lora init: ${ADAPTER_CONFIG} has ${k} ${cfg[k]}; ortfuse trains plain LoRA`);
  if (cfg.bias !== undefined && cfg.bias !== 'none') fail('unsupported', `lora init: ${ADAPTER_CONFIG} has bias '${cfg.bias}'; only 'none' is supported`);
  const { tensors } = decodeSafetensors(wBytes as Uint8Array, ADAPTER_WEIGHTS);
  const parts = new Map<string, { a?: NamedTensor; b?: NamedTensor }>();
  for (const [key, t] of tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(key);
    if (!m) fail('unsupported', `lora init: ${ADAPTER_WEIGHTS} has '${key}', which is not a LoRA A/B weight`);
    const e = parts.get(m[1]) ?? {};
    e[m[2] === 'A' ? 'a' : 'b'] = t;
    parts.set(m[1], e);
  }
  const modules = new Map<string, { a: NamedTensor; b: NamedTensor }>();
  for (const [mod, e] of parts) {
    if (!e.a || !e.b) fail('parse', `lora init: ${ADAPTER_WEIGHTS} has ${e.a ? 'lora_A' : 'lora_B'} but not ${e.a ? 'lora_B' : 'lora_A'} for '${mod}'`);
    modules.set(mod, { a: e.a, b: e.b });
  }
  if (!modules.size) fail('parse', `lora init: ${ADAPTER_WEIGHTS} holds no LoRA weights`);
  return { r, alpha, modules };
}
