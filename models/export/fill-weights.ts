/**
 * Rebuild the external weights of a torch export whose graph came back without them
 * (models/export/export_default.py --big writes `<stem>.onnx` with its external-data references and
 * `<stem>.stats.json` with each float initializer's mean, std and, when all its values are equal,
 * that value). Writes the data file the references name, beside the model, with seeded normal values
 * of the same mean and std (constants exactly), so the full-size export runs here for speed, memory
 * and pipeline checks. Not for numerics against torch: the values differ from the export's.
 *
 *   npx tsx models/export/fill-weights.ts model.onnx model.stats.json [--seed N]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeModelProto } from '../../src/onnx/io.js';
import { rng } from '../../src/random.js';

const [file, statsFile] = process.argv.slice(2);
if (!file || !statsFile) {
  console.error('usage: fill-weights.ts model.onnx stats.json [--seed N]');
  process.exit(2);
}
const seedAt = process.argv.indexOf('--seed');
const seed = seedAt > 0 ? Number(process.argv[seedAt + 1]) : 1234;
const stats = JSON.parse(fs.readFileSync(statsFile, 'utf8')).initializers as Record<string, { mean: number; std: number; const: number | null }>;
const p = decodeModelProto(fs.readFileSync(file), file);
const files = new Map<string, number>();
const tensors: { name: string; location: string; offset: number; length: number; dtype: number }[] = [];
for (const t of p.graph.initializer) {
  if (t.data_location !== 1) continue;
  const kv = new Map<string, string>(t.external_data.map((e: { key: string; value: string }) => [e.key, e.value]));
  const e = { name: t.name, location: kv.get('location')!, offset: Number(kv.get('offset') ?? 0), length: Number(kv.get('length')), dtype: t.data_type };
  tensors.push(e);
  files.set(e.location, Math.max(files.get(e.location) ?? 0, e.offset + e.length));
}
const rand = rng(seed);
for (const [location, size] of files) {
  const out = path.resolve(path.dirname(file), location);
  const fd = fs.openSync(out, 'w');
  fs.ftruncateSync(fd, size);
  for (const t of tensors.filter((x) => x.location === location)) {
    const n = t.length / 4;
    const s = stats[t.name];
    if (t.dtype !== 1 || !s) continue; // non-float external tensors stay zero (none in Qwen2 exports)
    const a = new Float32Array(n);
    if (s.const !== null) a.fill(s.const);
    else {
      for (let i = 0; i < n; i += 2) {
        const u = Math.max(rand(), 1e-12), v = rand();
        const r = Math.sqrt(-2 * Math.log(u));
        a[i] = s.mean + s.std * r * Math.cos(2 * Math.PI * v);
        if (i + 1 < n) a[i + 1] = s.mean + s.std * r * Math.sin(2 * Math.PI * v);
      }
    }
    fs.writeSync(fd, new Uint8Array(a.buffer), 0, a.byteLength, t.offset);
  }
  fs.closeSync(fd);
  console.log(`${out}: ${(size / 2 ** 30).toFixed(2)} GiB, ${tensors.length} tensors`);
}
