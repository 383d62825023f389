/**
 * Qwen2 parameters: their names (as torch's exporter writes them: the module's FQNs), shapes and
 * initial values. Values come from a seeded PRNG (HF's init: normal(0, initializer_range) for
 * linear and embedding weights, zeros for biases, ones for RMSNorm weights), from a caller's map
 * (e.g. a fixture's initializers), and are either held in memory or streamed to an external data
 * file tensor by tensor, so a 0.5B model is written without holding its weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../src/errors.js';
import { DataType } from '../src/onnx/schema.js';
import { Tensor } from '../src/ir/tensor.js';
import { headDim, type Qwen2Config } from './config.js';

/** How a parameter is initialised. */
export type Init = 'normal' | 'zeros' | 'ones';

export interface ParamSpec {
  name: string;
  dims: number[];
  init: Init;
}

/**
 * Every parameter of Qwen2ForCausalLM, named and ordered as torch's exporter writes the
 * initializers: `model.embed_tokens.weight` (untied only), the layers, `model.norm.weight`,
 * `lm_head.weight`. With tied embeddings the one shared table is called `lm_head.weight` (the
 * exporter keeps the last name of a tied parameter) and feeds both the embedding Gather and the
 * lm_head MatMul.
 */
export function qwen2Parameters(c: Qwen2Config): ParamSpec[] {
  const H = c.hidden_size;
  const kv = c.num_key_value_heads * headDim(c);
  const q = c.num_attention_heads * headDim(c);
  const I = c.intermediate_size;
  const bias = c.attention_bias ?? true;
  const out: ParamSpec[] = [];
  if (!c.tie_word_embeddings) out.push({ name: 'model.embed_tokens.weight', dims: [c.vocab_size, H], init: 'normal' });
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.self_attn.q_proj.weight`, dims: [q, H], init: 'normal' });
    if (bias) out.push({ name: `${p}.self_attn.q_proj.bias`, dims: [q], init: 'zeros' });
    out.push({ name: `${p}.self_attn.k_proj.weight`, dims: [kv, H], init: 'normal' });
    if (bias) out.push({ name: `${p}.self_attn.k_proj.bias`, dims: [kv], init: 'zeros' });
    out.push({ name: `${p}.self_attn.v_proj.weight`, dims: [kv, H], init: 'normal' });
    if (bias) out.push({ name: `${p}.self_attn.v_proj.bias`, dims: [kv], init: 'zeros' });
    out.push({ name: `${p}.self_attn.o_proj.weight`, dims: [H, q], init: 'normal' });
    out.push({ name: `${p}.mlp.gate_proj.weight`, dims: [I, H], init: 'normal' });
    out.push({ name: `${p}.mlp.up_proj.weight`, dims: [I, H], init: 'normal' });
    out.push({ name: `${p}.mlp.down_proj.weight`, dims: [H, I], init: 'normal' });
    out.push({ name: `${p}.input_layernorm.weight`, dims: [H], init: 'ones' });
    out.push({ name: `${p}.post_attention_layernorm.weight`, dims: [H], init: 'ones' });
  }
  out.push({ name: 'model.norm.weight', dims: [H], init: 'ones' });
  out.push({ name: 'lm_head.weight', dims: [c.vocab_size, H], init: 'normal' });
  return out;
}

/**
 * A small fast seeded PRNG (sfc32) with Box-Muller normals. Deterministic across platforms:
 * only 32-bit integer arithmetic and IEEE double math.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }

  /** Fill `out` with normal(0, std). */
  fillNormal(out: Float32Array, std: number): void {
    let i = 0;
    if (this.spare !== undefined && out.length > 0) out[i++] = this.normal() * std;
    for (; i + 1 < out.length; i += 2) {
      const r = std * Math.sqrt(-2 * Math.log(this.uniform()));
      const th = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(th);
      out[i + 1] = r * Math.sin(th);
    }
    if (i < out.length) out[i] = this.normal() * std;
  }
}

/** Per-parameter seed, so each tensor's values do not depend on the others (or their order). */
function paramSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Where the builder's weights come from. */
export type WeightsOption =
  | { kind: 'random'; seed: number }
  | { kind: 'map'; values: ReadonlyMap<string, Float32Array> | Record<string, Float32Array> };

/** Where the builder's weights go: in memory, or an external data file `dir/file`. */
export interface ExternalOption {
  dir: string;
  file: string;
}

const CHUNK = 1 << 20;

/**
 * Produces one Tensor per parameter. With `external`, values are generated in chunks and appended
 * to the data file (4 KiB aligned), and the tensor only references them.
 */
export class WeightWriter {
  private fd?: number;
  private offset = 0;
  private readonly file?: string;

  constructor(private readonly weights: WeightsOption, private readonly std: number, private readonly external?: ExternalOption) {
    if (external) {
      if (path.isAbsolute(external.file) || external.file.includes('/') || external.file.includes('\\'))
        fail('usage', `external data file '${external.file}' must be a bare file name (it is written into dir)`);
      this.file = path.resolve(external.dir, external.file);
      this.fd = fs.openSync(this.file, 'w');
    }
  }

  /** The tensor for parameter `p`. */
  tensor(p: ParamSpec): Tensor {
    const n = p.dims.reduce((a, b) => a * b, 1);
    if (this.weights.kind === 'map') {
      const m = this.weights.values;
      const v = m instanceof Map ? m.get(p.name) : (m as Record<string, Float32Array>)[p.name];
      if (!v) fail('usage', `weights map has no tensor '${p.name}'`);
      if (v.length !== n) fail('usage', `weights map: '${p.name}' has ${v.length} values, expected ${n} for shape [${p.dims}]`);
      return this.emit(p, [v]);
    }
    if (p.init !== 'normal') return this.emit(p, chunks(n, () => p.init === 'ones' ? 1 : 0));
    const rng = new Rng(paramSeed(this.weights.seed, p.name));
    return this.emit(p, normalChunks(n, rng, this.std));
  }

  private emit(p: ParamSpec, parts: Iterable<Float32Array>): Tensor {
    if (this.fd === undefined) {
      const n = p.dims.reduce((a, b) => a * b, 1);
      const all = new Float32Array(n);
      let o = 0;
      for (const part of parts) {
        all.set(part, o);
        o += part.length;
      }
      return Tensor.fromBytes(DataType.FLOAT, p.dims, new Uint8Array(all.buffer));
    }
    const start = Math.ceil(this.offset / 4096) * 4096;
    this.offset = start;
    for (const part of parts) {
      const b = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
      let done = 0;
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done, this.offset + done);
      this.offset += b.length;
    }
    return Tensor.fromExternal(DataType.FLOAT, p.dims, {
      file: this.file!, location: this.external!.file, offset: start, length: this.offset - start,
    });
  }

  /** Close the data file (if any); returns its size in bytes. */
  close(): number {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    return this.offset;
  }
}

function* chunks(n: number, value: () => number): Generator<Float32Array> {
  for (let o = 0; o < n; o += CHUNK) yield new Float32Array(Math.min(CHUNK, n - o)).fill(value());
}

function* normalChunks(n: number, rng: Rng, std: number): Generator<Float32Array> {
  const buf = new Float32Array(Math.min(CHUNK, n));
  for (let o = 0; o < n; o += CHUNK) {
    const part = o + CHUNK <= n ? buf : buf.subarray(0, n - o);
    rng.fillNormal(part, std);
    yield part;
  }
}
