/**
 * ortfuse-trained LoRA adapters for models/export/peft_lora.py --check (acceptance: the saved adapter
 * loads into PEFT and gives ortfuse's loss): for each tiny default fixture, 20 AdamW steps of r=4,
 * alpha=8 adapters (all seven projections; gqa also q,v,down only, unfused) on the fixture's run
 * batches, then `saveAdapter(OUT/<name>)` and OUT/<name>/ortfuse.json { stem, loss at the fixture's
 * `inputs` }.
 *
 *   npx tsx models/export/lora-adapters.ts OUT
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTrainer } from '../../src/training/index.js';
import type { Batch } from '../../src/data/batches.js';

const DIR = new URL('../fixtures/default/', import.meta.url).pathname;
const out = process.argv[2] ?? '.';
const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
const batch = (b: { input_ids: number[][]; labels: number[][] }): Batch => ({ inputIds: i64(b.input_ids), labels: i64(b.labels), batch: b.input_ids.length, seq: b.input_ids[0].length });

const RUNS = [
  { name: 'tied-all-fused', stem: 'qwen2-default-tied', lora: 'r=4,alpha=8,seed=1', fuse: true },
  { name: 'gqa-all-fused', stem: 'qwen2-default-gqa', lora: 'r=4,alpha=8,seed=2', fuse: true },
  { name: 'gqa-qvdown-unfused', stem: 'qwen2-default-gqa', lora: { r: 4, alpha: 16, targets: ['q', 'v', 'down'], seed: 3 }, fuse: false },
];

for (const r of RUNS) {
  const fx = JSON.parse(fs.readFileSync(`${DIR}${r.stem}.json`, 'utf8'));
  const t = await createTrainer(`${DIR}${r.stem}.onnx`, { lora: r.lora, fuse: r.fuse, lr: 3e-3, steps: 20, warmup: 2 });
  for (const b of fx.run.batches.slice(0, 20)) await t.step(batch(b));
  const loss = await t.evaluate([batch(fx.inputs)]);
  const dir = path.join(out, r.name);
  await t.saveAdapter(dir);
  fs.writeFileSync(path.join(dir, 'ortfuse.json'), JSON.stringify({ stem: r.stem, loss, lora: r.lora, fuse: r.fuse, steps: 20 }));
  console.log(`${r.name}: loss at inputs ${loss} (fixture base ${fx.loss})`);
  await t.dispose();
}
