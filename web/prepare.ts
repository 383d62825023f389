/**
 * Build-time assets of the page (run by the vite plugin in vite.config.ts, in Node with tsx): the
 * tiny Qwen2's fused training-step graph for the webgpu target, its initial parameters, and the
 * Moby Dick excerpt it trains on — the same model, graph and text as the Node backends use for
 * `buildQwen2(TINY, { seed })` and `mobyDick().slice(0, chars)`. The graph is the one
 * `ortfuse train --backend webgpu --batch B --seq T` runs: specialised to the page's batch shape
 * (trainingSpec with { batch, seq }: shape plumbing folded, fewer CPU nodes), so the page trains
 * batches of exactly that shape (manifest.shape).
 *
 *   tsx web/prepare.ts <outDir> [seed] [chars] [BxT (default 2x32)]
 *   → train.onnx, segments.bin (the ORT segments of the stage plan, back to back), params.bin (float32,
 *     parameters back to back), manifest.json, text.txt
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { prepareTraining } from '../src/runtime/session.js';
import { trainingSpec } from '../src/runtime/webgpu/training-spec.js';
import type { StagePlan } from '../src/runtime/webgpu/stage-split.js';

export interface Manifest {
  model: string;
  seed: number;
  chars: number;
  params: { name: string; dims: number[]; offset: number; length: number }[];
  /** The batch shape the graph is specialised to. */
  shape: { batch: number; seq: number };
  /** Some op on our kernel (default policy: FLCE): the stage plan; segment i is bytes segments[i] of segments.bin. */
  stages?: { plan: StagePlan; segments: { offset: number; length: number }[] };
}

const [outDir, seedArg = '1', charsArg = '100000', shapeArg = '2x32'] = process.argv.slice(2);
if (!outDir) throw new Error('usage: prepare.ts <outDir> [seed] [chars] [BxT]');
const seed = Number(seedArg), chars = Number(charsArg);
const [batch, seq] = shapeArg.split('x').map(Number);
if (!(Number.isInteger(batch) && batch > 0 && Number.isInteger(seq) && seq > 1)) throw new Error(`prepare.ts: batch shape '${shapeArg}' is not BxT (B >= 1, T >= 2)`);
const prepared = prepareTraining(buildQwen2(TINY, { seed }), { fuse: true, target: 'webgpu' });
const spec = trainingSpec(prepared.train, prepared.initial, {}, { batch, seq });
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'train.onnx'), spec.model);
const total = spec.params.reduce((s, p) => s + p.value.length, 0);
const all = new Float32Array(total);
const manifest: Manifest = { model: 'Qwen2 tiny', seed, chars, params: [], shape: { batch, seq } };
// Always written (empty without stages) so the page's file list is fixed.
const segs = spec.stages?.segments ?? [];
let at = 0;
if (spec.stages) manifest.stages = { plan: spec.stages.plan, segments: segs.map((b) => ({ offset: (at += b.length) - b.length, length: b.length })) };
fs.writeFileSync(path.join(outDir, 'segments.bin'), Buffer.concat(segs));
let offset = 0;
for (const p of spec.params) {
  all.set(p.value, offset);
  manifest.params.push({ name: p.name, dims: p.dims, offset, length: p.value.length });
  offset += p.value.length;
}
fs.writeFileSync(path.join(outDir, 'params.bin'), new Uint8Array(all.buffer));
fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest));
fs.writeFileSync(path.join(outDir, 'text.txt'), mobyDick().slice(0, chars));
