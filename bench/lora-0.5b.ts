/**
 * Issue 14, acceptance 2 (and 3 at 0.5B): LoRA fine-tuning of an exported Qwen2-0.5B on the `webgpu`
 * backend through the training API — `createTrainer(FILE, { backend: 'webgpu', lora, batch, seq })` —
 * peak GPU memory (nvidia-smi sampled every 50 ms, minus the idle reading; and the live WebGPU
 * buffers) and tok/s (mean of the steps after the first, which compiles the shaders), then the loss
 * of a fixed batch and the adapter (`saveAdapter`) for bench/lora_peft.py --check. Random token ids
 * (seeded): the GPU machine has no corpus.
 *
 *   node --liftoff-only dist/bench/lora-0.5b.js --model qwen2-0.5b-default.onnx [--lora r=16,alpha=32] [--batch 8 --seq 512 --steps 4] [--out DIR]
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

const idle = gpuUsedMiB();
let peak = idle;
const smi = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '50']);
smi.on('error', () => undefined);
smi.stdout.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) peak = Math.max(peak, Number(l)); });

const t0 = performance.now();
const t = await createTrainer(model, { backend: 'webgpu', lora, batch, seq, lr: 1e-4, steps, warmup: 0, ...(kernels ? { kernels } : {}) });
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
  what: 'ortfuse LoRA, webgpu', model: path.basename(model), lora, batch, seq, kernels: kernels || 'default (flce,swiglu)',
  trained: t.parameterCount, adapters: t.lora?.modules.length, prepareMs, stepMs, losses, tokensPerSecond: tokS,
  gpuPeakMiB: smiPeakMiB, webgpuBuffersPeakMiB: peakGpuMiB, evalLoss,
};
await t.dispose();
fs.writeFileSync(path.join(out, 'lora-0.5b.json'), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
process.exit(0);
