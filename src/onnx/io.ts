/**
 * Reading and writing ONNX files. Saving is atomic (temporary files, then rename), so a failed
 * save never destroys what was at the destination, including when it is the input file itself.
 * External data are copied tensor by tensor through a fixed buffer: large weights are streamed,
 * never held in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelProtoType } from './schema.js';
import { fail, OrtfuseError } from '../errors.js';
import { modelFromProto } from '../ir/from-proto.js';
import { modelToProto, type TensorSink } from '../ir/to-proto.js';
import type { Model } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { toLong } from '../ir/long.js';
import { inlineExternalData, type ExternalFiles } from './external-bytes.js';

/** Protobuf messages cannot exceed 2 GiB; above this, tensors must go to external data. */
const PROTO_LIMIT = 2 ** 31 - 1;

/** Decode ONNX bytes to the raw ModelProto (throws a one-line OrtfuseError on bad bytes). */
export function decodeModelProto(bytes: Uint8Array, source = '<bytes>'): any {
  if (bytes.length === 0) fail('parse', `${source}: file is empty, not an ONNX model`);
  let p: any;
  try {
    p = ModelProtoType.decode(bytes);
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    fail('parse', `${source}: not a valid ONNX model (protobuf decoding failed: ${why})`, e);
  }
  if (!p.graph) fail('parse', `${source}: not an ONNX model (no graph in the protobuf message)`);
  if (!p.ir_version && !(p.opset_import?.length > 0))
    fail('parse', `${source}: not an ONNX model (no ir_version and no opset_import)`);
  return p;
}

/**
 * Load a model from bytes. `baseDir` resolves external data locations; `externalData` gives the
 * external data files as bytes instead, by file name (read in, as if the model had them embedded).
 */
export function loadBytes(bytes: Uint8Array, opts: { baseDir?: string; source?: string; externalData?: ExternalFiles } = {}): Model {
  const source = opts.source ?? '<bytes>';
  const p = decodeModelProto(bytes, source);
  if (opts.externalData) inlineExternalData(p, opts.externalData, source);
  return modelFromProto(p, { baseDir: opts.baseDir, source });
}

/** Load a model file; external data are referenced, not read. */
export function loadFile(file: string): Model {
  let bytes: Uint8Array;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) fail('io', `${file}: is a directory, not an ONNX file`);
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof OrtfuseError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    fail('io', `${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? e})`}`, e);
  }
  const model = loadBytes(bytes, { baseDir: path.dirname(path.resolve(file)), source: file });
  checkExternalFiles(model, file);
  return model;
}

/** Every external data file must exist and be long enough: fail at load, not mid-save. */
function checkExternalFiles(model: Model, source: string): void {
  const sizes = new Map<string, number>();
  const visit = (t: Tensor | undefined, name: string) => {
    const ref = t?.external;
    if (!ref) return;
    let size = sizes.get(ref.file);
    if (size === undefined) {
      try {
        size = fs.statSync(ref.file).size;
      } catch (e) {
        fail('io', `${source}: tensor '${name}' needs external data file '${ref.location}', which is missing (${ref.file})`, e);
      }
      sizes.set(ref.file, size);
    }
    const len = ref.length ?? t!.byteLength;
    if (ref.offset + len > size)
      fail('io', `${source}: tensor '${name}' reads bytes ${ref.offset}..${ref.offset + len} of '${ref.location}', which has only ${size}`);
  };
  for (const v of model.graph.initializers) visit(v.initializer, v.name);
  for (const n of model.graph.allNodes()) for (const a of n.attributes.values()) if (a.type === 'TENSOR') visit(a.value, `${n.name}.${a.name}`);
}

export interface SaveOptions {
  /**
   * 'auto' (default): external data when the source had external data or the weights exceed
   * the protobuf limit; true: always external (for tensors ≥ sizeThreshold); false: embed all.
   */
  externalData?: boolean | 'auto';
  /** File name of the external data, relative to the model (default `<model file>.data`). */
  location?: string;
  /** Tensors smaller than this stay embedded (default 1024 bytes). */
  sizeThreshold?: number;
  /**
   * Reference external tensors whose data file already lies beside the output where they are,
   * instead of copying them (for builders that streamed the weights there). Default false.
   */
  referenceInPlace?: boolean;
}

function usesExternal(model: Model): boolean {
  return model.graph.initializers.some((v) => v.initializer?.external);
}

function weightBytes(model: Model): number {
  return model.graph.initializers.reduce((s, v) => s + (v.initializer?.byteLength ?? 0), 0);
}

/** An embedded TensorProto (raw_data) for a tensor. */
function embedded(t: Tensor, name: string): any {
  if (t.proto && !t.external) return t.proto.name === name ? t.proto : { ...t.proto, name };
  const p: any = { dims: t.dims.map(toLong), data_type: t.dtype, name, raw_data: t.bytes() };
  if (t.proto?.doc_string) p.doc_string = t.proto.doc_string;
  return p;
}

/** A TensorProto referencing an external tensor's bytes where they already are. */
function inPlace(t: Tensor, name: string): any {
  const ref = t.external!;
  const kv = [
    { key: 'location', value: path.basename(ref.file) },
    { key: 'offset', value: String(ref.offset) },
    { key: 'length', value: String(ref.length ?? t.byteLength) },
  ];
  return { dims: t.dims.map(toLong), data_type: t.dtype, name, external_data: kv, data_location: 1 };
}

/** Serialize to bytes with every tensor embedded (what InferenceSession.create takes). */
export function saveBytes(model: Model): Uint8Array {
  if (weightBytes(model) > PROTO_LIMIT)
    fail('usage', `the model's weights (${(weightBytes(model) / 2 ** 30).toFixed(2)} GiB) exceed the 2 GiB protobuf limit; save it to a file with external data`);
  return ModelProtoType.encode(modelToProto(model, embedded)).finish();
}

const COPY_CHUNK = 16 << 20;

class ExternalWriter {
  fd: number;
  offset = 0;
  private buf = Buffer.allocUnsafe(COPY_CHUNK);
  private readFds = new Map<string, number>();
  constructor(readonly tmpFile: string, readonly location: string) {
    this.fd = fs.openSync(tmpFile, 'w');
  }

  write(t: Tensor, name: string): any {
    const len = t.byteLength;
    if (len >= 1 << 20) this.pad(4096);
    const offset = this.offset;
    if (t.external) this.copy(t, len);
    else {
      const b = t.bytes();
      fs.writeSync(this.fd, b, 0, b.length, this.offset);
      this.offset += b.length;
    }
    const kv = [
      { key: 'location', value: this.location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(len) },
    ];
    const p: any = { dims: t.dims.map(toLong), data_type: t.dtype, name, external_data: kv, data_location: 1 };
    if (t.proto?.doc_string) p.doc_string = t.proto.doc_string;
    if (t.proto?.metadata_props?.length) p.metadata_props = t.proto.metadata_props;
    return p;
  }

  private pad(align: number): void {
    this.offset = Math.ceil(this.offset / align) * align;
  }

  private copy(t: Tensor, len: number): void {
    const ref = t.external!;
    let rfd = this.readFds.get(ref.file);
    if (rfd === undefined) {
      rfd = fs.openSync(ref.file, 'r');
      this.readFds.set(ref.file, rfd);
    }
    let done = 0;
    while (done < len) {
      const want = Math.min(COPY_CHUNK, len - done);
      const n = fs.readSync(rfd, this.buf, 0, want, ref.offset + done);
      if (n === 0) fail('io', `external data '${ref.location}' ends early while copying tensor`);
      fs.writeSync(this.fd, this.buf, 0, n, this.offset);
      this.offset += n;
      done += n;
    }
  }

  private closed = false;

  /** Close every file (idempotent, so error paths can call it too). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.readFds.values()) fs.closeSync(fd);
    fs.closeSync(this.fd);
  }

}

/**
 * Save a model to `file` atomically. External data (if any) go to `location` beside it.
 * Returns the paths written.
 */
export function saveFile(model: Model, file: string, opts: SaveOptions = {}): { model: string; data?: string } {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) fail('io', `${file}: directory ${dir} does not exist`);
  const mode = opts.externalData ?? 'auto';
  const external = mode === true || (mode === 'auto' && (usesExternal(model) || weightBytes(model) > PROTO_LIMIT / 2));
  const threshold = opts.sizeThreshold ?? 1024;
  const location = opts.location ?? `${path.basename(file)}.data`;
  if (path.isAbsolute(location) || location.includes('..')) fail('usage', `external data location '${location}' must be a file name beside the model`);
  const tag = `.ortfuse-tmp-${process.pid}-${Date.now()}`;
  const tmpModel = path.resolve(file) + tag;
  const dataFile = path.join(dir, location);
  const tmpData = dataFile + tag;
  let writer: ExternalWriter | undefined;
  const inPlaceFiles = new Set<string>();
  const sink: TensorSink = (t, name) => {
    if (opts.referenceInPlace && t.external && path.dirname(t.external.file) === dir) {
      inPlaceFiles.add(path.resolve(t.external.file));
      return inPlace(t, name);
    }
    if (!external || !(t.external || t.byteLength >= threshold)) return embedded(t, name);
    writer ??= new ExternalWriter(tmpData, location);
    return writer.write(t, name);
  };
  try {
    const bytes = ModelProtoType.encode(modelToProto(model, sink)).finish();
    writer?.close();
    if (writer && inPlaceFiles.has(dataFile)) fail('usage', `${file}: external data '${location}' would overwrite weights referenced in place; choose another location`);
    fs.writeFileSync(tmpModel, bytes);
    if (writer) fs.renameSync(tmpData, dataFile);
    fs.renameSync(tmpModel, path.resolve(file));
    return { model: path.resolve(file), data: writer ? dataFile : undefined };
  } catch (e) {
    writer?.close();
    for (const f of [tmpModel, tmpData]) fs.rmSync(f, { force: true });
    if (e instanceof OrtfuseError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    fail('io', `${file}: cannot write (${code ?? (e as Error).message})`, e);
  }
}
