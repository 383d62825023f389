/**
 * External data given as bytes instead of files beside the model (a browser's picked files): every
 * TensorProto of a decoded model that points at external data gets its bytes as `raw_data`, so the
 * model loads as if it had been saved with every tensor embedded. No Node imports.
 */
import { fail } from '../errors.js';

/** The external data files of a model by the `location` its tensors name (a file name). */
export type ExternalFiles = ReadonlyMap<string, Uint8Array>;

/** Each TensorProto of a decoded graph: initializers and tensor attributes, in subgraphs too. */
function* tensorsOf(g: any): Generator<any> {
  yield* g.initializer ?? [];
  for (const n of g.node ?? [])
    for (const a of n.attribute ?? []) {
      if (a.t) yield a.t;
      yield* a.tensors ?? [];
      if (a.g) yield* tensorsOf(a.g);
      for (const sg of a.graphs ?? []) yield* tensorsOf(sg);
    }
}

/** The file name of a location (a model may name its data `./model.onnx.data`). */
const baseName = (location: string) => location.split(/[\\/]/).pop() ?? location;

/**
 * Replace the external references of the decoded ModelProto `p` by the bytes of `files` (looked
 * up by the location's file name). A location without a file, or a range past its end, fails
 * naming the tensor, the location and the files that were given. Returns how many tensors it read.
 */
export function inlineExternalData(p: any, files: ExternalFiles, source: string): number {
  const byName = new Map([...files].map(([name, bytes]) => [baseName(name), bytes]));
  let count = 0;
  for (const t of tensorsOf(p.graph ?? {})) {
    if (t.data_location !== 1) continue;
    const kv = new Map<string, string>((t.external_data ?? []).map((e: any) => [e.key, e.value]));
    const location = kv.get('location') ?? fail('parse', `${source}: tensor '${t.name}' has external data without a location`);
    const data = byName.get(baseName(location));
    if (!data) {
      const given = byName.size ? `given: ${[...byName.keys()].join(', ')}` : 'no data files were given';
      fail('io', `${source}: tensor '${t.name}' needs external data file '${location}', which is missing (${given})`);
    }
    const offset = Number(kv.get('offset') ?? 0);
    const length = kv.has('length') ? Number(kv.get('length')) : data.length - offset;
    if (!(offset >= 0 && length >= 0 && offset + length <= data.length))
      fail('io', `${source}: tensor '${t.name}' reads bytes ${offset}..${offset + length} of '${location}', which has only ${data.length}`);
    t.raw_data = data.subarray(offset, offset + length);
    t.data_location = 0;
    t.external_data = [];
    count++;
  }
  return count;
}
