/**
 * Acceptance 3 of issue 4: fused and unfused training of the tiny Qwen2 (models/config.ts TINY) on
 * Moby Dick, fp32, same seed, on the cpu backend: the losses must agree within 1e-3 at every step and
 * fall well below the start. Writes bench/results/convergence-tiny.{svg,json,md}.
 *
 *   npx tsx bench/train-convergence.ts [--steps 50] [--batch 4] [--seq 64]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { lossChartSvg } from '../src/report/plot.js';
import { runTraining, type StepRecord, type TrainOptions } from '../src/runtime/train.js';

const TOLERANCE = 1e-3;

export interface Convergence {
  options: TrainOptions;
  fused: StepRecord[];
  unfused: StepRecord[];
  /** |fused − unfused| per step. */
  deltas: number[];
  maxDelta: number;
  /** The fused graph's fused ops (from the optimize report). */
  fusions: Record<string, number>;
}

/** Train the tiny Qwen2 twice (fused, unfused) from the same weights and batches. */
export async function convergence(o: Omit<TrainOptions, 'fuse'>): Promise<Convergence> {
  const tok = await getTokenizer('bytes');
  const text = mobyDick();
  const fusions: Record<string, number> = {};
  const run = (fuse: boolean) => runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...o, fuse }, {
    onStart: ({ prepared }) => {
      if (fuse) for (const p of prepared.report?.passes ?? []) for (const [k, v] of Object.entries(p.counts)) if (k.startsWith('fuse-')) fusions[k] = (fusions[k] ?? 0) + v;
    },
  });
  const fused = await run(true);
  const unfused = await run(false);
  const deltas = fused.map((r, i) => Math.abs(r.loss - unfused[i].loss));
  return { options: { ...o, fuse: true }, fused, unfused, deltas, maxDelta: Math.max(...deltas), fusions };
}

function markdown(c: Convergence, command: string): string {
  const o = c.options;
  const lines = [
    '# Convergence: fused vs unfused training of the tiny Qwen2 on Moby Dick',
    '',
    `Command: \`${command}\` (cpu backend, onnxruntime-node, fp32, bytes tokenizer, B=${o.batch}, T=${o.seq}, lr=${o.lr}, warm-up ${o.warmup}, seed ${o.seed}, AdamW wd 0.01, clip 1).`,
    `Fused graph: ${Object.entries(c.fusions).map(([k, v]) => `${k} ×${v}`).join(', ')}; linear-CE with in-forward gradients (FusedLinearCrossEntropyWithGrad).`,
    '',
    `Max |fused − unfused| over ${c.deltas.length} steps: **${c.maxDelta.toExponential(2)}** (tolerance ${TOLERANCE}). ` +
      `Loss ${c.fused[0].loss.toFixed(4)} → ${c.fused[c.fused.length - 1].loss.toFixed(4)} (fused), ${c.unfused[0].loss.toFixed(4)} → ${c.unfused[c.unfused.length - 1].loss.toFixed(4)} (unfused).`,
    '',
    '| step | fused loss | unfused loss | abs diff | fused ms | unfused ms |',
    '|---|---|---|---|---|---|',
    ...c.fused.map((r, i) => `| ${r.step} | ${r.loss.toFixed(6)} | ${c.unfused[i].loss.toFixed(6)} | ${c.deltas[i].toExponential(2)} | ${r.ms.toFixed(0)} | ${c.unfused[i].ms.toFixed(0)} |`),
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string, d: number) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const o = { steps: arg('--steps', 50), batch: arg('--batch', 4), seq: arg('--seq', 64), lr: 3e-3, seed: 5, warmup: 5, evalEvery: 0, evalBatches: 1 };
  const command = `npx tsx bench/train-convergence.ts${argv.length ? ` ${argv.join(' ')}` : ''}`;
  const c = await convergence(o);
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');
  const svg = await lossChartSvg([
    { name: 'fused', points: c.fused }, { name: 'unfused', points: c.unfused },
  ], `tiny Qwen2 on Moby Dick, fused vs unfused (max |Δ| ${c.maxDelta.toExponential(1)})`);
  fs.writeFileSync(path.join(dir, 'convergence-tiny.svg'), svg);
  const pick = (r: StepRecord) => ({ step: r.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, ms: Math.round(r.ms), valLoss: r.valLoss });
  fs.writeFileSync(path.join(dir, 'convergence-tiny.json'), `${JSON.stringify({
    command, options: o, tolerance: TOLERANCE, maxDelta: c.maxDelta, fusions: c.fusions, deltas: c.deltas, fused: c.fused.map(pick), unfused: c.unfused.map(pick),
  }, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'convergence-tiny.md'), markdown(c, command));
  console.log(`max |fused − unfused| = ${c.maxDelta.toExponential(3)}; fused ${c.fused[0].loss.toFixed(4)} → ${c.fused[c.fused.length - 1].loss.toFixed(4)}`);
  if (!(c.maxDelta < TOLERANCE)) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
