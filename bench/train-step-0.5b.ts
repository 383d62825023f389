/**
 * Acceptance 4 of issue 4: one full training step (forward, backward, AdamW) of the Qwen2-0.5B-shaped
 * model (models/generated/qwen2-0.5b.onnx, seeded random weights) on the cpu backend
 * (onnxruntime-node + CpuTrainer), fused and unfused, with peak RSS and tok/s side by side.
 *
 *   npx tsx bench/train-step-0.5b.ts [--config fused:8x512,unfused:2x128,...] [--steps 1] [--cap-gib 21]
 *
 * Every configuration runs alone in its own child process (never two at once) under an RSS
 * watchdog that kills it past `--cap-gib` (the 24 GB machine minus what else runs), as the OOM
 * killer would. An address-space cap (prlimit --as) does not work here: ORT's CPU arena reserves
 * far more than it touches (fused 2x128: 28.9 GiB VmPeak for 13.7 GiB VmHWM), so it fails runs that
 * fit. A child does 1 warm-up step then `--steps`
 * measured steps on Moby Dick (Qwen tokenizer) and reports peak RSS (VmHWM) and peak virtual size
 * (VmPeak). Results are merged into bench/results/train-step-0.5b.json (keyed by configuration) and
 * the table bench/results/train-step-0.5b.md is rewritten from it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(self), '..');
const MODEL = path.join(root, 'models/generated/qwen2-0.5b.onnx');
const RESULTS = path.join(root, 'bench/results/train-step-0.5b.json');

interface Row {
  key: string;
  variant: 'fused' | 'unfused';
  batch: number;
  seq: number;
  ok: boolean;
  command: string;
  capGiB: number;
  prepareMs?: number;
  stepMs?: number[];
  tokensPerSecond?: number;
  peakRssMiB?: number;
  peakVirtMiB?: number;
  losses?: number[];
  error?: string;
  wallS: number;
}

function procStatusMiB(field: string): number {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function child(variant: string, batch: number, seq: number, steps: number): Promise<void> {
  const { loadFile } = await import('../src/onnx/io.js');
  const { prepareTraining } = await import('../src/runtime/session.js');
  const { CpuTrainer } = await import('../src/runtime/trainer.js');
  const { getTokenizer } = await import('../src/data/tokenizer.js');
  const { mobyDick } = await import('../src/data/corpus.js');
  const { batches, split } = await import('../src/data/batches.js');
  const t0 = performance.now();
  const prepared = prepareTraining(loadFile(MODEL), { fuse: variant === 'fused' });
  const ops = [...new Set(prepared.train.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType))];
  const trainer = await CpuTrainer.create(prepared.train, prepared.initial, {
    optimizer: { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1 }, schedule: { lr: 1e-4, warmupSteps: 0, totalSteps: steps + 1 },
    // ORT's memory pattern allocates one block for the whole planned peak on the second run, on top
    // of the arena regions the first run left: fused 8x256 went 19.3 GiB (step 1) -> past 21 GiB.
    session: process.env.MEM_PATTERN === '1' ? {} : { enableMemPattern: false },
  });
  const prepareMs = performance.now() - t0;
  const tok = await getTokenizer('qwen');
  const stream = batches(split(tok.encode(mobyDick().slice(0, 400_000)), seq).train, batch, seq, 1);
  const stepMs: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i <= steps; i++) {
    // The previous step's gradients (1.9 GiB of JS arrays) are garbage now; collect them before the
    // next step's arrive, or V8 may hold both (+2 GiB on step 2 otherwise).
    (globalThis as { gc?: () => void }).gc?.();
    const r = await trainer.train(stream.next().value!);
    losses.push(r.loss);
    if (i > 0) stepMs.push(r.ms);
    console.error(`  [${variant} ${batch}x${seq}] step ${r.step}: loss ${r.loss.toFixed(4)}, ${(r.ms / 1000).toFixed(1)} s, VmHWM ${procStatusMiB('VmHWM')} MiB`);
  }
  const mean = stepMs.reduce((a, b) => a + b, 0) / stepMs.length;
  console.log(JSON.stringify({
    prepareMs: Math.round(prepareMs), stepMs: stepMs.map(Math.round), tokensPerSecond: Math.round((batch * seq * 1000) / mean),
    peakRssMiB: procStatusMiB('VmHWM'), peakVirtMiB: procStatusMiB('VmPeak'), losses, fusedOps: ops,
  }));
  await trainer.release();
}

/** RSS of a process from /proc (MiB), NaN once it is gone. */
function rssMiB(pid: number): number {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Run one configuration in a child process under an RSS watchdog: /proc/<pid>/status is polled
 * every 100 ms and the child is killed (SIGKILL) once its resident set exceeds `capGiB`, standing in
 * for the kernel's OOM killer on a machine with that much memory.
 */
async function runOne(variant: 'fused' | 'unfused', batch: number, seq: number, steps: number, capGiB: number): Promise<Row> {
  const args = ['--expose-gc', '--import', 'tsx', self, '--child', variant, String(batch), String(seq), String(steps)];
  const command = `node --expose-gc --import tsx bench/train-step-0.5b.ts --child ${variant} ${batch} ${seq} ${steps} (RSS watchdog ${capGiB} GiB)`;
  console.log(`${variant} ${batch}x${seq}: ${command}`);
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => void (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    process.stderr.write(String(d).split('\n').filter((l) => l.startsWith('  [')).map((l) => `${l}\n`).join(''));
  });
  let maxRss = 0;
  let killed = false;
  const timer = setInterval(() => {
    const r = rssMiB(child.pid!);
    if (r > maxRss) maxRss = r;
    if (r > capGiB * 1024 && !killed) {
      killed = true;
      child.kill('SIGKILL');
    }
  }, 100);
  const [code, signal] = await new Promise<[number | null, string | null]>((res) => child.on('close', (c, sg) => res([c, sg])));
  clearInterval(timer);
  const wallS = Math.round((performance.now() - t0) / 1000);
  const base = { key: `${variant}:${batch}x${seq}`, variant, batch, seq, command, capGiB, wallS };
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code === 0 && last.startsWith('{')) return { ...base, ok: true, ...JSON.parse(last) };
  const gib = (maxRss / 1024).toFixed(1);
  if (killed) return { ...base, ok: false, peakRssMiB: Math.round(maxRss), error: `out of memory: RSS passed the ${capGiB} GiB cap (${gib} GiB when killed)` };
  const msg = stderr.split('\n').filter((l) => /alloc|memory|error/i.test(l) && !l.startsWith('  [')).slice(0, 2).join(' | ').slice(0, 300);
  return { ...base, ok: false, peakRssMiB: Math.round(maxRss), error: `${signal ? `killed by ${signal}` : `exit ${code}`} at ${gib} GiB RSS: ${msg}` };
}

function table(rows: Row[]): string {
  const lines = [
    '# One training step of the Qwen2-0.5B-shaped model on the cpu backend (onnxruntime-node)',
    '',
    'Full step = forward + backward (one ORT session run of the training graph) + AdamW on the host',
    '(weight decay 0.01, global-norm clip 1). fp32, random weights (models/generate.ts, seed 0), Moby Dick',
    'with the Qwen tokenizer. Fused = the default pipeline (RMSNorm, SwiGLU, RoPE, linear-CE with in-forward',
    "gradients, 'cpu' Loop body, chunk max(Liger rule, 256)) + drop-logits. Each row: its own child process",
    'under an RSS watchdog (killed past the cap, as the OOM killer would), 1 warm-up step, then the measured',
    'step(s), with a forced GC before each step (the previous gradients, else step 2 peaks ~2 GiB higher);',
    'peak RSS = VmHWM of the child (parameters 1.9 GiB, AdamW moments 3.8 GiB, gradients in JS',
    "1.9 GiB, and ORT's arena, which keeps its high-water mark); for killed runs the RSS when killed.",
    '',
    '| variant | B x T | tokens | result | peak RSS GiB | peak virtual GiB | step s | tok/s | loss (warm-up, measured) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const gib = (m?: number) => (m === undefined ? '' : (m / 1024).toFixed(2));
  for (const r of rows)
    lines.push(`| ${r.variant} | ${r.batch} x ${r.seq} | ${r.batch * r.seq} | ${r.ok ? 'ok' : `**failed** (${r.error})`} | ${gib(r.peakRssMiB)} | ${gib(r.peakVirtMiB)} | ${r.stepMs ? (r.stepMs.reduce((a, b) => a + b, 0) / r.stepMs.length / 1000).toFixed(1) : ''} | ${r.tokensPerSecond ?? ''} | ${r.losses?.map((l) => l.toFixed(3)).join(', ') ?? ''} |`);
  lines.push('', 'Commands (run one at a time by `npx tsx bench/train-step-0.5b.ts --config ...`):', '', ...rows.map((r) => `- \`${r.command}\` (cap ${r.capGiB} GiB, wall ${r.wallS} s)`), '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') return child(argv[1], Number(argv[2]), Number(argv[3]), Number(argv[4]));
  const opt = (name: string, d: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : d;
  };
  const configs = opt('--config', 'unfused:2x128,fused:2x128,fused:8x512,unfused:8x512').split(',');
  const steps = Number(opt('--steps', '1'));
  const cap = Number(opt('--cap-gib', '21'));
  if (!fs.existsSync(MODEL)) {
    const { generate } = await import('../models/generate.js');
    const { QWEN2_0_5B } = await import('../models/config.js');
    console.log('generating', generate(QWEN2_0_5B, MODEL).model);
  }
  const saved: Row[] = fs.existsSync(RESULTS) ? JSON.parse(fs.readFileSync(RESULTS, 'utf8')).rows : [];
  const byKey = new Map(saved.map((r) => [r.key, r]));
  for (const c of configs) {
    const [variant, bt] = c.split(':');
    const [b, t] = bt.split('x').map(Number);
    const row = await runOne(variant as 'fused' | 'unfused', b, t, steps, cap);
    console.log(JSON.stringify(row));
    byKey.set(row.key, row);
    const rows = [...byKey.values()].sort((x, y) => x.batch * x.seq - y.batch * y.seq || x.variant.localeCompare(y.variant));
    fs.writeFileSync(RESULTS, `${JSON.stringify({ machine: '2 cores, 24 GB (no swap)', node: process.version, rows }, null, 2)}\n`);
    // Hand-written notes (from a '## Reading' heading on) survive the rewrite.
    const md = RESULTS.replace(/\.json$/, '.md');
    const notes = fs.existsSync(md) ? fs.readFileSync(md, 'utf8').split(/(?=^## Reading)/m)[1] ?? '' : '';
    fs.writeFileSync(md, `${table(rows)}${notes ? `\n${notes}` : ''}`);
  }
}

await main();
