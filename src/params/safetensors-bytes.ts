/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`, then
 * the tensors' bytes back to back (offsets relative to the end of the header). What transformers'
 * `from_pretrained` and `safetensors.torch.load_file` read. Float32 only here (what ortfuse trains).
 * Bytes in, bytes out, no `node:` imports (the browser page bundles it); files: ./safetensors.ts.
 */
import { fail } from '../errors.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** The bytes of a safetensors file holding `tensors` (in the given order), with string metadata. */
export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) fail('invalid', `safetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let head = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((head.length + 8) % 8)) % 8; // keep the data 8-byte aligned
  if (pad) head = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + head.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), p);
    p += t.data.byteLength;
  }
  return out;
}

/** Read a safetensors file (F32 tensors; other dtypes are refused by name). */
export function decodeSafetensors(bytes: Uint8Array, file = 'safetensors'): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) fail('parse', `${file}: not a safetensors file (too short)`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) fail('parse', `${file}: not a safetensors file (header length ${n})`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    return fail('parse', `${file}: not a safetensors file (header is not JSON)`);
  }
  const base = 8 + n;
  const tensors = new Map<string, NamedTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (e.dtype !== 'F32') fail('unsupported', `${file}: tensor '${name}' is ${e.dtype}; only F32 is read`);
    const [b, end] = e.data_offsets as [number, number];
    const copy = bytes.slice(base + b, base + end);
    tensors.set(name, { shape: e.shape, data: new Float32Array(copy.buffer, copy.byteOffset, (end - b) / 4) });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

