/**
 * Acceptance: every model of ONNX's backend test suite (Debian's libonnx-testdata) loads, saves
 * and reloads with identical protobuf semantics, decodes with onnx-proto (ONNX 1.10), and — where
 * onnxruntime-node runs the original — the saved copy gives bit-identical outputs on the test's
 * own input_*.pb.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { loadBytes, loadFile, saveBytes } from '../src/onnx/io.js';
import { DataType, ModelProtoType, TensorProtoType } from '../src/onnx/schema.js';
import { Tensor } from '../src/ir/tensor.js';

const onnx10 = createRequire(import.meta.url)('onnx-proto').onnx;

const DATA = '/usr/share/libonnx-testdata/data';

function findModels(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findModels(p));
    else if (e.name === 'model.onnx') out.push(p);
  }
  return out.sort();
}

const semantic = (bytes: Uint8Array) =>
  JSON.stringify(ModelProtoType.toObject(ModelProtoType.decode(bytes), { longs: String, bytes: String, defaults: false }));

const ORT_TYPES: Record<number, ort.Tensor.Type> = {
  [DataType.FLOAT]: 'float32', [DataType.DOUBLE]: 'float64', [DataType.FLOAT16]: 'float16',
  [DataType.INT8]: 'int8', [DataType.UINT8]: 'uint8', [DataType.INT16]: 'int16', [DataType.UINT16]: 'uint16',
  [DataType.INT32]: 'int32', [DataType.UINT32]: 'uint32', [DataType.INT64]: 'int64', [DataType.UINT64]: 'uint64',
  [DataType.BOOL]: 'bool', [DataType.STRING]: 'string',
};

/** A test_data_set input as an ort.Tensor, or a skip reason. */
function readInput(file: string): ort.Tensor | string {
  const p: any = TensorProtoType.decode(fs.readFileSync(file));
  const type = ORT_TYPES[p.data_type];
  if (!type) return `input element type ${p.data_type} not supported by ort.Tensor`;
  const dims = (p.dims ?? []).map(Number);
  if (type === 'string') return new ort.Tensor('string', (p.string_data ?? []).map((s: Uint8Array) => Buffer.from(s).toString('utf8')), dims);
  const arr = Tensor.fromProto(p, path.dirname(file)).toArray();
  return new ort.Tensor(type, type === 'bool' ? new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) : (arr as any), dims);
}

function outputBytes(t: ort.Tensor): Buffer {
  if (t.type === 'string') return Buffer.from(JSON.stringify(t.data));
  const d = t.data as ArrayBufferView;
  return Buffer.concat([Buffer.from(`${t.type}[${t.dims}]`), Buffer.from(d.buffer, d.byteOffset, d.byteLength)]);
}

const OPTS: ort.InferenceSession.SessionOptions = {
  logSeverityLevel: 4, intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
};

async function runAll(bytes: Uint8Array, feedsList: Record<string, ort.Tensor>[]): Promise<Buffer[][]> {
  const s = await ort.InferenceSession.create(bytes, OPTS);
  try {
    const res: Buffer[][] = [];
    for (const feeds of feedsList) {
      const r = await s.run(feeds);
      res.push(s.outputNames.map((n) => outputBytes(r[n])));
    }
    return res;
  } finally {
    await s.release();
  }
}

function category(e: unknown): string {
  const m = String((e as Error)?.message ?? e);
  if (/is not a registered function\/op/.test(m)) return 'ORT: op not registered (preview.training)';
  if (/Could not find an implementation/.test(m)) return 'ORT: no CPU kernel for this op version/type';
  if (/Unsupported data type/.test(m)) return 'ORT: unsupported element type (bfloat16)';
  if (/Batchwise recurrent/.test(m)) return 'ORT: batchwise RNN layout not supported';
  if (/locale/.test(m)) return 'ORT: StringNormalizer locale missing';
  return 'ORT: other load error';
}

const bump = (m: Record<string, number>, k: string) => void (m[k] = (m[k] ?? 0) + 1);

describe('libonnx-testdata', () => {
  it('every model round-trips; ORT outputs of the saved copy are bit-identical', async () => {
    if (!fs.existsSync(DATA))
      throw new Error(`${DATA} is missing: install ONNX's backend test models with 'apt-get install -y libonnx-testdata'`);
    const t0 = performance.now();
    const files = findModels(DATA);
    expect(files.length).toBeGreaterThan(1000);
    const c = { models: files.length, loaded: 0, roundtripped: 0, onnx110Agree: 0, ranByOrt: 0, bitIdentical: 0, nondeterministic: 0 };
    const skipped: Record<string, number> = {};
    const failures: string[] = [];
    for (const file of files) {
      const name = path.relative(DATA, path.dirname(file));
      const orig = fs.readFileSync(file);
      let saved: Uint8Array;
      try {
        saved = saveBytes(loadFile(file));
        c.loaded++;
        if (semantic(saved) !== semantic(orig)) throw new Error('protobuf semantics differ after save');
        const again = saveBytes(loadBytes(saved));
        if (semantic(again) !== semantic(orig)) throw new Error('protobuf semantics differ after reload');
        c.roundtripped++;
      } catch (e) {
        failures.push(`${name}: round trip: ${(e as Error).message}`);
        continue;
      }
      // onnx-proto (ONNX 1.10) decodes our bytes and agrees on the fields it knows.
      try {
        const old = onnx10.ModelProto.decode(saved);
        const ours: any = ModelProtoType.decode(saved);
        const view = (m: any) => JSON.stringify({
          ops: (m.graph.node ?? []).map((n: any) => `${n.domain ?? ''}:${n.opType ?? n.op_type}`),
          inputs: (m.graph.input ?? []).map((v: any) => v.name),
          outputs: (m.graph.output ?? []).map((v: any) => v.name),
          inits: (m.graph.initializer ?? []).map((t: any) => `${t.name}:${t.dataType ?? t.data_type}`),
          opsets: (m.opsetImport ?? m.opset_import ?? []).map((o: any) => `${o.domain ?? ''}@${o.version}`),
        });
        if (view(old) !== view(ours)) throw new Error(`disagree: ${view(old)} vs ${view(ours)}`);
        c.onnx110Agree++;
      } catch (e) {
        failures.push(`${name}: onnx-proto 1.10: ${(e as Error).message}`);
      }
      // Inputs of the test's own data sets.
      const proto: any = ModelProtoType.decode(orig);
      const nonTensor = [...(proto.graph.input ?? []), ...(proto.graph.output ?? [])].some((v: any) => !v.type?.tensor_type);
      if (nonTensor) {
        bump(skipped, 'sequence/optional/map inputs or outputs');
        continue;
      }
      const sets = fs.readdirSync(path.dirname(file)).filter((d) => d.startsWith('test_data_set_')).sort();
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(orig, OPTS);
      } catch (e) {
        bump(skipped, category(e));
        if (process.env.ORTFUSE_DEBUG) console.log(name, String(e).slice(0, 200));
        continue;
      }
      const names = session.inputNames;
      await session.release();
      const feedsList: Record<string, ort.Tensor>[] = [];
      let why: string | undefined;
      for (const s of sets) {
        const dir = path.join(path.dirname(file), s);
        const ins = fs.readdirSync(dir).filter((f) => /^input_\d+\.pb$/.test(f)).sort((a, b) => parseInt(a.slice(6)) - parseInt(b.slice(6)));
        const feeds: Record<string, ort.Tensor> = {};
        ins.forEach((f, i) => {
          const t = readInput(path.join(dir, f));
          if (typeof t === 'string') why = t;
          else if (i < names.length) feeds[names[i]] = t;
        });
        feedsList.push(feeds);
      }
      if (why) {
        bump(skipped, why);
        continue;
      }
      if (feedsList.length === 0) {
        bump(skipped, 'no test data set');
        continue;
      }
      let a: Buffer[][];
      try {
        a = await runAll(orig, feedsList);
      } catch (e) {
        bump(skipped, 'ORT: original fails to run');
        continue;
      }
      c.ranByOrt++;
      try {
        const b = await runAll(saved, feedsList);
        const same = (x: Buffer[][], y: Buffer[][]) => x.every((r, i) => r.every((o, j) => o.equals(y[i][j])));
        if (same(a, b)) c.bitIdentical++;
        else if (!same(a, await runAll(orig, feedsList))) c.nondeterministic++;
        else failures.push(`${name}: outputs of the saved copy differ from the original's`);
      } catch (e) {
        failures.push(`${name}: saved copy fails in ORT: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`libonnx-testdata (${secs} s): ${JSON.stringify(c)}\nskipped: ${JSON.stringify(skipped, null, 1)}`);
    if (failures.length) console.log(failures.slice(0, 30).join('\n'));
    expect(failures).toEqual([]);
    expect(c.roundtripped).toBe(c.models);
    expect(c.bitIdentical + c.nondeterministic).toBe(c.ranByOrt);
    expect(c.ranByOrt).toBeGreaterThan(900);
  }, 600_000);
});
