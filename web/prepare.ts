/**
 * Build-time assets of the page (run by the vite plugin in vite.config.ts, in Node with tsx): the
 * built-in model — the tiny Qwen2 with seeded weights as an exported training model (inputs
 * input_ids and labels, outputs loss and logits), the same model as `buildQwen2(TINY, { seed })` in
 * Node — and the Moby Dick excerpt it trains on by default (`mobyDick().slice(0, chars)`). The page
 * runs the library's whole pipeline on it (adopt, fuse, autodiff, stage plan) as on a picked model.
 *
 *   tsx web/prepare.ts <outDir> [seed] [chars]   → tiny.onnx, text.txt
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { saveBytes } from '../src/onnx/io.js';

const [outDir, seedArg = '1', charsArg = '100000'] = process.argv.slice(2);
if (!outDir) throw new Error('usage: prepare.ts <outDir> [seed] [chars]');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'tiny.onnx'), saveBytes(buildQwen2(TINY, { seed: Number(seedArg) })));
fs.writeFileSync(path.join(outDir, 'text.txt'), mobyDick().slice(0, Number(charsArg)));
