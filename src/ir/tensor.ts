/**
 * Tensor data in the IR. A tensor loaded from a file keeps its original TensorProto, so an
 * untouched tensor is written back exactly as it came (typed fields, raw_data or external data);
 * tensors made by passes hold little-endian raw bytes. External data is referenced, never read
 * unless a pass asks for the values, so 0.5B-scale weights are not held in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataType, dataTypeBits, dataTypeName } from '../onnx/schema.js';
import { fail } from '../errors.js';
import { toNumber } from './long.js';

/** Where an external tensor's bytes live. */
export interface ExternalRef {
  /** Absolute path of the data file. */
  file: string;
  /** The `location` string as written in the model. */
  location: string;
  offset: number;
  /** Byte length; undefined means "to the end of the file". */
  length?: number;
}

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** Number of elements of a shape. */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export class Tensor {
  /** The original proto (name excluded on save: the value's name wins). */
  proto?: any;
  private raw?: Uint8Array;
  external?: ExternalRef;

  private constructor(readonly dtype: number, readonly dims: number[]) {}

  /** Wrap a decoded TensorProto; external locations are resolved against `baseDir`. */
  static fromProto(p: any, baseDir: string | undefined): Tensor {
    const t = new Tensor(p.data_type ?? 0, (p.dims ?? []).map(toNumber));
    t.proto = p;
    if (p.data_location === 1) {
      const kv = new Map<string, string>((p.external_data ?? []).map((e: any) => [e.key, e.value]));
      const location = kv.get('location');
      if (!location) fail('parse', `tensor '${p.name}' has external data without a location`);
      t.external = {
        file: path.resolve(baseDir ?? '.', location),
        location,
        offset: Number(kv.get('offset') ?? 0),
        length: kv.has('length') ? Number(kv.get('length')) : undefined,
      };
    }
    return t;
  }

  /** A new tensor from values (numbers, or bigints for 64-bit integer types). */
  static from(dtype: number, dims: number[], values: ArrayLike<number> | ArrayLike<bigint> | TypedArray): Tensor {
    const t = new Tensor(dtype, dims);
    const n = numel(dims);
    if (values.length !== n) fail('invalid', `tensor of shape [${dims}] needs ${n} values, got ${values.length}`);
    const arr = makeTyped(dtype, n);
    for (let i = 0; i < n; i++) (arr as any)[i] = coerce(dtype, (values as any)[i]);
    t.raw = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    return t;
  }

  /** A new tensor over raw little-endian bytes (not copied). */
  static fromBytes(dtype: number, dims: number[], bytes: Uint8Array): Tensor {
    const t = new Tensor(dtype, dims);
    t.raw = bytes;
    return t;
  }

  /** A tensor referencing external bytes (used by builders writing large weights). */
  static fromExternal(dtype: number, dims: number[], ref: ExternalRef): Tensor {
    const t = new Tensor(dtype, dims);
    t.external = ref;
    return t;
  }

  get size(): number {
    return numel(this.dims);
  }

  /** Size in bytes of the packed data. */
  get byteLength(): number {
    return Math.ceil((this.size * dataTypeBits(this.dtype)) / 8);
  }

  /** Raw little-endian bytes (reads external data synchronously). */
  bytes(): Uint8Array {
    if (this.raw) return this.raw;
    if (this.external) return readExternal(this.external, this.byteLength);
    const p = this.proto;
    if (p?.raw_data && p.raw_data.length > 0) return p.raw_data;
    return typedFieldsToBytes(this);
  }

  /** The values as a typed array of the natural JS type. */
  toArray(): TypedArray {
    const b = this.bytes();
    const copy = new Uint8Array(b); // Buffer.slice() would share the pool buffer
    return new (arrayType(this.dtype, 'read values of'))(copy.buffer);
  }

  /** Values as JS numbers (64-bit integers converted; use for shapes and indices). */
  toNumbers(): number[] {
    return Array.from(this.toArray() as ArrayLike<number | bigint>, (v) => Number(v));
  }

  /** True if the data are kept in memory (not external). */
  get inMemory(): boolean {
    return !this.external;
  }
}

type TypedArrayType = new (lengthOrBuffer: number | ArrayBuffer) => TypedArray;

/** The JS array type holding each element type (16-bit floats as their raw bits). */
const ARRAY_TYPES: Partial<Record<number, TypedArrayType>> = {
  [DataType.FLOAT]: Float32Array, [DataType.DOUBLE]: Float64Array, [DataType.INT8]: Int8Array,
  [DataType.UINT8]: Uint8Array, [DataType.BOOL]: Uint8Array, [DataType.INT16]: Int16Array,
  [DataType.UINT16]: Uint16Array, [DataType.FLOAT16]: Uint16Array, [DataType.BFLOAT16]: Uint16Array,
  [DataType.INT32]: Int32Array, [DataType.UINT32]: Uint32Array, [DataType.INT64]: BigInt64Array,
  [DataType.UINT64]: BigUint64Array,
};

function arrayType(dtype: number, what: string): TypedArrayType {
  return ARRAY_TYPES[dtype] ?? fail('unsupported', `cannot ${what} element type ${dataTypeName(dtype)}`);
}

function makeTyped(dtype: number, n: number): TypedArray {
  return new (arrayType(dtype, 'create a tensor of'))(n);
}

function coerce(dtype: number, v: number | bigint): number | bigint {
  if (dtype === DataType.INT64 || dtype === DataType.UINT64) return typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
  if (dtype === DataType.BOOL) return v ? 1 : 0;
  return Number(v);
}

function readExternal(ref: ExternalRef, expected: number): Uint8Array {
  const length = ref.length ?? expected;
  let fd: number;
  try {
    fd = fs.openSync(ref.file, 'r');
  } catch (e) {
    return fail('io', `external data file '${ref.location}' not found (looked at ${ref.file})`, e);
  }
  try {
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = fs.readSync(fd, out, got, length - got, ref.offset + got);
      if (n === 0) fail('io', `external data file '${ref.location}' ends before offset ${ref.offset} + ${length}`);
      got += n;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** Pack the typed repeated fields of a TensorProto into raw little-endian bytes. */
function typedFieldsToBytes(t: Tensor): Uint8Array {
  const p = t.proto ?? {};
  const n = t.size;
  const out = makeTyped(t.dtype === DataType.BOOL ? DataType.UINT8 : t.dtype, n);
  let src: ArrayLike<any>;
  switch (t.dtype) {
    case DataType.FLOAT: src = p.float_data ?? []; break;
    case DataType.DOUBLE: src = p.double_data ?? []; break;
    case DataType.INT64: src = (p.int64_data ?? []).map((v: any) => BigInt(v.toString())); break;
    case DataType.UINT32: src = (p.uint64_data ?? []).map((v: any) => Number(v.toString())); break;
    case DataType.UINT64: src = (p.uint64_data ?? []).map((v: any) => BigInt(v.toString())); break;
    case DataType.INT32: case DataType.INT16: case DataType.INT8: case DataType.UINT16: case DataType.UINT8:
    case DataType.BOOL: case DataType.FLOAT16: case DataType.BFLOAT16: src = p.int32_data ?? []; break;
    default: return fail('unsupported', `cannot read values of element type ${dataTypeName(t.dtype)} from typed fields`);
  }
  if (src.length !== n) fail('parse', `tensor '${p.name}' of shape [${t.dims}] holds ${src.length} values`);
  for (let i = 0; i < n; i++) (out as any)[i] = src[i];
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
