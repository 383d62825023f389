/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`, then
 * the tensors' bytes back to back (offsets relative to the end of the header). What transformers'
 * `from_pretrained` and `safetensors.torch.load_file` read. Float32 in memory (what ortfuse trains);
 * BF16 / F16 in the file for half-precision models (./../onnx/half.ts converts).
 * Bytes in, bytes out, no `node:` imports (the browser page bundles it); files: ./safetensors.ts.
 */
import { fail } from '../errors.js';
import { narrowToHalf, widenHalf } from '../onnx/half.js';
import { DataType } from '../onnx/schema.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** Element types written and read: float32, and the half types a bf16 / fp16 model is saved in. */
export type SafetensorsDtype = 'F32' | 'BF16' | 'F16';
const HALF: Record<string, number> = { BF16: DataType.BFLOAT16, F16: DataType.FLOAT16 };

/**
 * The bytes of a safetensors file holding `tensors` (in the given order), with string metadata;
 * `dtype` BF16 / F16 rounds every value to that type (nearest even, as torch does).
 */
export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}, dtype: SafetensorsDtype = 'F32'): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const data: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) fail('invalid', `safetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`);
    const v = dtype === 'F32' ? t.data : narrowToHalf(HALF[dtype], t.data);
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    data.push(bytes);
    off += bytes.byteLength;
  }
  let head = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((head.length + 8) % 8)) % 8; // keep the data 8-byte aligned
  if (pad) head = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(pad));
  const out = new Uint8Array(8 + head.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const bytes of data) {
    out.set(bytes, p);
    p += bytes.byteLength;
  }
  return out;
}

/** Read a safetensors file (F32 tensors, and BF16 / F16 widened to float32; other dtypes are refused by name). */
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
    if (e.dtype !== 'F32' && !(e.dtype in HALF)) fail('unsupported', `${file}: tensor '${name}' is ${e.dtype}; only F32, BF16 and F16 are read`);
    const [b, end] = e.data_offsets as [number, number];
    const copy = bytes.slice(base + b, base + end);
    tensors.set(name, { shape: e.shape, data: e.dtype === 'F32' ? new Float32Array(copy.buffer, copy.byteOffset, (end - b) / 4) : widenHalf(HALF[e.dtype], new Uint16Array(copy.buffer, copy.byteOffset, (end - b) / 2)) });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

