/**
 * Issue 14, acceptance 2 (and 3 at 0.5B): LoRA fine-tuning of an exported Qwen2-0.5B on the `webgpu`
 * backend through the training API — `createTrainer(FILE, { backend: 'webgpu', lora, batch, seq })` —
 * peak GPU memory (nvidia-smi sampled every 50 ms, minus the idle reading; and the live WebGPU
 * buffers) and tok/s (mean of the steps after the first, which compiles the shaders), then the loss
 * of a fixed batch and the adapter (`saveAdapter`) for bench/lora_peft.py --check. Random token ids
 * (seeded): the GPU machine has no corpus. `--memory-budget GiB` plans the backward's recomputation to
 * that budget (issue 13) and turns clipping off (`--clip 0` unless given), so AdamW runs between
 * segments; a budget the planner refuses is retried once at the smallest one it names.
 *
 *   node --liftoff-only dist/bench/lora-0.5b.js --model qwen2-0.5b-default.onnx [--lora r=16,alpha=32] [--batch 8 --seq 512 --steps 4] [--memory-budget 8 [--clip 0]] [--out DIR]
 */
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTrainer } from '../src/training/index.js';
import { rng } from '../src/random.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

/** GPU memory in use (MiB) per nvidia-smi, or NaN where there is none. */
function gpuUsedMiB(): number {
  try {
    return Number(execFileSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits']).toString().trim().split('\n')[0]);
  } catch {
    return NaN;
  }
}

const model = arg('model', '');
const lora = arg('lora', 'r=16,alpha=32,dropout=0,targets=q,k,v,o,gate,up,down');
const batch = Number(arg('batch', '8'));
const seq = Number(arg('seq', '512'));
const steps = Number(arg('steps', '4'));
const out = arg('out', 'bench/out/lora-0.5b');
const kernels = arg('kernels', '');
const budgetArg = arg('memory-budget', '');
const clip = Number(arg('clip', budgetArg ? '0' : '1'));

const idle = gpuUsedMiB();
let peak = idle;
const smi = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '50']);
smi.on('error', () => undefined);
smi.stdout.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) peak = Math.max(peak, Number(l)); });

const t0 = performance.now();
const trainer = (budgetGiB?: number) =>
  createTrainer(model, { backend: 'webgpu', lora, batch, seq, lr: 1e-4, steps, warmup: 0, clip, ...(kernels ? { kernels } : {}), ...(budgetGiB ? { memoryBudget: budgetGiB * 2 ** 30 } : {}) });
let budgetGiB = budgetArg ? Number(budgetArg) : undefined;
let refused: string | undefined;
let t: Awaited<ReturnType<typeof createTrainer>>;
try {
  t = await trainer(budgetGiB);
} catch (e) {
  const min = /can be met is [\d.]+ GiB \((\d+)MiB\)/.exec(String((e as Error).message));
  if (!budgetGiB || !min) throw e;
  refused = String((e as Error).message);
  console.error(`budget ${budgetGiB} GiB refused; retrying at the smallest: ${refused}`);
  budgetGiB = Number(min[1]) / 1024;
  t = await trainer(budgetGiB);
}
const prepareMs = performance.now() - t0;
const r = rng(7);
const tokens = () => {
  const ids = new BigInt64Array(batch * seq);
  for (let i = 0; i < ids.length; i++) ids[i] = BigInt(Math.floor(r() * t.vocab));
  return { inputIds: ids, labels: ids.slice(), batch, seq };
};
const stepMs: number[] = [];
const losses: number[] = [];
let peakGpuMiB = 0;
for (let s = 0; s < steps; s++) {
  const info = await t.step(tokens());
  stepMs.push(info.ms);
  losses.push(info.loss);
  peakGpuMiB = info.peakGpuMiB ?? 0;
}
const measured = stepMs.slice(1);
const tokS = (batch * seq * 1000) / (measured.reduce((a, b) => a + b, 0) / measured.length);
const smiPeakMiB = peak - idle;
// A fixed batch for the PEFT check: its loss under the trained adapter.
const check = tokens();
const evalLoss = await t.evaluate([check]);
fs.mkdirSync(out, { recursive: true });
await t.saveAdapter(path.join(out, 'adapter'));
fs.writeFileSync(path.join(out, 'adapter', 'ortfuse.json'), JSON.stringify({ loss: evalLoss, input_ids: Array.from(check.inputIds, Number), batch, seq }));
smi.kill();
const result = {
  what: 'ortfuse LoRA, webgpu', model: path.basename(model), lora, batch, seq, kernels: kernels || 'default (flce,swiglu)', memoryBudgetGiB: budgetGiB ?? null, clip, ...(refused ? { refused } : {}),
  trained: t.parameterCount, adapters: t.lora?.modules.length, prepareMs, stepMs, losses, tokensPerSecond: tokS,
  gpuPeakMiB: smiPeakMiB, webgpuBuffersPeakMiB: peakGpuMiB, evalLoss,
};
await t.dispose();
fs.writeFileSync(path.join(out, 'lora-0.5b.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
process.exit(0);
