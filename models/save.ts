/**
 * Saving a built model whose weights the builder already streamed to an external data file:
 * the model proto references that file in place (no copy of the weights), which `saveFile`
 * (src/onnx/io.ts) would otherwise make.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../src/errors.js';
import { ModelProtoType } from '../src/onnx/schema.js';
import { modelToProto } from '../src/ir/to-proto.js';
import { toLong } from '../src/ir/long.js';
import type { Model } from '../src/ir/graph.js';

/**
 * Write `model` to `file` (atomically: temporary file, then rename). External tensors must live
 * in the model's directory and are referenced as they are; in-memory tensors are embedded.
 */
export function saveExternalModel(model: Model, file: string): void {
  const dir = path.dirname(path.resolve(file));
  const proto = modelToProto(model, (t, name) => {
    const p: any = { dims: t.dims.map(toLong), data_type: t.dtype, name };
    if (!t.external) return { ...p, raw_data: t.bytes() };
    if (path.dirname(t.external.file) !== dir)
      fail('usage', `tensor '${name}': external data ${t.external.file} is not beside ${file}; use saveFile to copy it`);
    const kv = [
      { key: 'location', value: path.basename(t.external.file) },
      { key: 'offset', value: String(t.external.offset) },
      { key: 'length', value: String(t.external.length ?? t.byteLength) },
    ];
    return { ...p, external_data: kv, data_location: 1 };
  });
  const tmp = `${path.resolve(file)}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, ModelProtoType.encode(proto).finish());
    fs.renameSync(tmp, path.resolve(file));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
