/**
 * Issue 13: one training step of the Qwen2-0.5B-shaped builder model (models/, seeded weights,
 * fused, fp32) under `--memory-budget`: the planner's prediction (src/autodiff/recompute-plan.ts)
 * next to the measured peak, and tok/s next to the budget-free run.
 *
 *   node --liftoff-only dist/bench/memory-budget.js --runs webgpu:8x512,webgpu:8x512:12:0:simple,cpu:8x512:16 [--steps 3] [--out DIR] [--config 0.5b|tiny] [--unfused] [--fuse-mlp] [--no-pool] [--prealloc] [--model FILE]
 *
 * A run is backend[@mlp]:BxT[:budget GiB|-[:clip[:cache[:window[:unfreed MiB]]]]]: mlp (with --fuse-mlp) is
 * `--mlp-recompute` on|off|auto for that run (default auto: under a budget the planner's choice, else
 * kept on webgpu and recomputed on cpu), e.g. --fuse-mlp --runs webgpu@off:8x512,webgpu@on:8x512 side
 * by side; clip 1 (default) clips the global norm (all
 * gradients live to the end of the step); clip 0 applies AdamW per parameter between segments on
 * the webgpu stage plan; cache = ORT-web's storageBufferCacheMode (default: 'simple' without a budget, 'bucket' under one, as `ortfuse train`); window N:
 * the host runs at most N submissions ahead of the GPU (TrainerOptions.inFlight; 0 = no bound; default:
 * what `ortfuse train` does, BUDGET_IN_FLIGHT under a budget, else 0). (Records before 2026-12-04 06:00 used
 * this field for "wait for the whole queue every N ORT runs".) unfreed M: the host waits whenever more than M MiB
 * of released buffers may not be freed yet (TrainerOptions.unfreedBytes; 0 = no bound; default: what
 * `ortfuse train` does).
 * Each run is its own child process. webgpu: live WebGPU buffers (createBuffer/destroy, ORT's pool
 * included) and nvidia-smi sampled every 50 ms minus the idle reading; cpu: the child's peak RSS
 * (VmHWM), with 2 intra-op threads as on the 2-core box; --prealloc: the gradients are pre-allocated
 * outputs (TrainerOptions.preallocateGradients); --no-pool: our kernels' released buffers destroyed, not reused (TrainerOptions.bufferPool 0; budget runs never pool, as `ortfuse train`); --fuse-mlp: each whole MLP as one SwiGLUMLP op on our GEMM kernels (kernels default,mlp); --model FILE: an export (e.g. the 0.5B default export
 * of models/export/export_default.py --big) instead of the builder graph. The first step is a warm-up; tok/s is the
 * mean of the others. Random token ids (seeded).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { samplePeak } from './nvidia-smi.js';
import { BUDGET_CPU_SESSION, budgetTrainerOptions, type MlpRecompute } from '../src/runtime/memory-budget.js';

const GiB = 2 ** 30;

interface Result {
  run: string;
  backend: string;
  batch: number;
  seq: number;
  budgetGiB?: number;
  clip: number;
  cache?: string;
  /** webgpu: submissions the host may run ahead of the GPU (0 = no bound). */
  inFlight?: number;
  /** webgpu: bytes of released buffers allowed unfreed (0 = no bound), the waits that made, the most seen. */
  unfreedBytes?: number;
  unfreedWaits?: number;
  unfreedPeakGiB?: number;
  /** --mlp-recompute of the run (backend@mlp), and the fused MLPs that recompute gate and up, of how many. */
  mlp?: string;
  plan?: { values: number; matmuls: number; nodes: number; activationGiB: number; predictedGiB: number; overhead: number; minimumGiB?: number; planMs: number; mlpRecomputed?: number; mlps?: number };
  stepMs: number[];
  losses: number[];
  tokensPerSecond: number;
  /** webgpu: live buffers peak; cpu: peak RSS. */
  measuredGiB: number;
  /** webgpu: nvidia-smi peak minus idle. */
  nvidiaSmiGiB?: number;
  error?: string;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

function parseRun(run: string) {
  const [backendMlp, shape, budget = '-', clip = '1', cache = '-', window = '-', unfreed = '-'] = run.split(':');
  const [backend, mlp] = backendMlp.split('@');
  const [batch, seq] = shape.split('x').map(Number);
  const dflt = budgetTrainerOptions(budget !== '-');
  return {
    backend: backend as 'cpu' | 'webgpu', mlp: mlp as MlpRecompute | undefined, batch, seq, budgetGiB: budget === '-' ? undefined : Number(budget), clip: Number(clip), cache: cache === '-' ? undefined : cache,
    inFlight: window === '-' ? (dflt.inFlight ?? 0) : Number(window),
    unfreedBytes: unfreed === '-' ? (dflt.unfreedBytes ?? 0) : Number(unfreed) * 2 ** 20,
  };
}

async function child(run: string, steps: number): Promise<Result> {
  const r = parseRun(run);
  const { buildQwen2 } = await import('../models/qwen2.js');
  const { PRESETS } = await import('../models/config.js');
  const { prepareTraining } = await import('../src/runtime/session.js');
  const { rng } = await import('../src/random.js');
  const t0 = performance.now();
  const staged = r.backend === 'webgpu' && r.clip === 0;
  const file = arg('model', '');
  const { loadFile } = await import('../src/onnx/io.js');
  const prepared = prepareTraining(file ? loadFile(file) : buildQwen2(PRESETS[arg('config', '0.5b')], { seed: 0 }), {
    fuse: !process.argv.includes('--unfused'), fuseMlp: process.argv.includes('--fuse-mlp'), mlpRecompute: r.mlp, target: r.backend,
    memory: { batch: r.batch, seq: r.seq, backend: r.backend, budget: r.budgetGiB === undefined ? undefined : r.budgetGiB * GiB, gradientsApplied: staged },
  });
  const m = prepared.memory!;
  const plan = { values: m.values, matmuls: m.matmuls, nodes: m.nodes, activationGiB: m.activationBytes / GiB, predictedGiB: m.predictedBytes / GiB, overhead: m.overhead, minimumGiB: m.minimumBytes && m.minimumBytes / GiB, planMs: performance.now() - t0, mlpRecomputed: m.inOps, mlps: m.inOpsOf };
  console.error(`${run}: planned in ${plan.planMs.toFixed(0)} ms: ${JSON.stringify(plan)}`);
  const opts = { optimizer: { lr: 1e-4, weightDecay: 0.01, maxGradNorm: r.clip }, schedule: { lr: 1e-4, warmupSteps: 0, totalSteps: steps }, threads: 2, session: r.budgetGiB === undefined ? undefined : BUDGET_CPU_SESSION, preallocateGradients: process.argv.includes('--prealloc') };
  let trainer: { train(b: { inputIds: BigInt64Array; labels: BigInt64Array; batch: number; seq: number }): Promise<{ loss: number }>; release(): Promise<void> };
  let measured: () => number;
  let unfreed: () => { unfreedWaits?: number; unfreedPeakGiB?: number } = () => ({});
  if (r.backend === 'webgpu') {
    const { nodeOrtWeb } = await import('../src/runtime/webgpu/ort-web-node.js');
    const { trainingSpec, parseKernels } = await import('../src/runtime/webgpu/training-spec.js');
    const { WebGpuTrainer } = await import('../src/runtime/webgpu/trainer.js');
    const { FUSED_OPS } = await import('../custom-ops/registry.js');
    const { ort, meter } = await nodeOrtWeb();
    const spec = trainingSpec(prepared.train, prepared.initial, parseKernels(process.argv.includes('--fuse-mlp') ? 'default,mlp' : 'default'), { batch: r.batch, seq: r.seq });
    spec.bufferCache = r.cache as typeof spec.bufferCache;
    const t = await WebGpuTrainer.create(ort, spec, { ...opts, inFlight: r.inFlight, unfreedBytes: r.unfreedBytes, ...(process.argv.includes('--no-pool') || r.budgetGiB !== undefined ? { bufferPool: 0 } : {}), ...(r.budgetGiB !== undefined ? { ortBufferCache: 'bucket' as const } : {}) }, FUSED_OPS);
    trainer = t;
    measured = () => meter.peak;
    const { StagedSteps } = await import('../src/runtime/webgpu/steps.js');
    if (t.runner instanceof StagedSteps) {
      const runner = t.runner;
      unfreed = () => ({ unfreedWaits: runner.ahead.unfreedWaits, unfreedPeakGiB: runner.ahead.unfreedPeak / GiB });
    }
  } else {
    const { CpuTrainer } = await import('../src/runtime/trainer.js');
    trainer = await CpuTrainer.create(prepared.train, prepared.initial, opts);
    measured = () => process.resourceUsage().maxRSS * 1024;
  }
  const rand = rng(7);
  const stepMs: number[] = [];
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const ids = BigInt64Array.from({ length: r.batch * r.seq }, () => BigInt(Math.floor(rand() * prepared.vocab)));
    (globalThis as { gc?: () => void }).gc?.();
    const t = performance.now();
    losses.push((await trainer.train({ inputIds: ids, labels: ids.slice(), batch: r.batch, seq: r.seq })).loss);
    stepMs.push(performance.now() - t);
  }
  const measuredGiB = measured() / GiB;
  const u = unfreed();
  await trainer.release();
  const times = stepMs.slice(1);
  return { run, ...r, ...u, plan, stepMs, losses, tokensPerSecond: (r.batch * r.seq * 1000 * times.length) / times.reduce((a, b) => a + b, 0), measuredGiB };
}

async function parent(): Promise<void> {
  const runs = arg('runs', 'webgpu:8x512,webgpu:8x512:12:0').split(',');
  const out = arg('out', 'bench/results');
  const tag = arg('tag', 'memory-budget');
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (const run of runs) {
    const gpu = run.startsWith('webgpu');
    const smi = gpu ? samplePeak() : undefined;
    const res = await new Promise<Result>((resolve) => {
      const c = spawn(process.execPath, [...process.execArgv, '--liftoff-only', '--expose-gc', '--max-old-space-size=32768', self, '--child', run, arg('steps', '3'), '--config', arg('config', '0.5b'), ...(arg('model', '') ? ['--model', arg('model', '')] : []), ...['--unfused', '--prealloc', '--fuse-mlp', '--no-pool'].filter((f) => process.argv.includes(f))], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d.toString()));
      c.on('close', (code) => {
        try {
          resolve(JSON.parse(text.trim().split('\n').pop() ?? ''));
        } catch {
          resolve({ run, ...parseRun(run), stepMs: [], losses: [], tokensPerSecond: 0, measuredGiB: 0, error: `exit ${code}: ${text.slice(-400)}` });
        }
      });
    });
    if (smi) res.nvidiaSmiGiB = smi.stop() / 1024;
    results.push(res);
    console.log(JSON.stringify(res));
  }
  const f = (x: number | undefined, d = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
  const rows = results.map((r) => `| ${r.backend}${r.mlp ? ` (--mlp-recompute ${r.mlp})` : ''} | ${r.batch}×${r.seq} | ${r.budgetGiB ?? 'none'} | ${r.clip ? 'clip 1' : 'no clip, AdamW between segments'} | ${r.cache ?? (r.budgetGiB === undefined ? 'simple' : 'bucket')}${r.backend === 'webgpu' ? (r.inFlight ? `, ≤ ${r.inFlight} submissions ahead` : r.unfreedBytes ? `, ≤ ${f(r.unfreedBytes / 2 ** 20, 0)} MiB unfreed (${r.unfreedWaits ?? '-'} waits, peak ${f(r.unfreedPeakGiB)} GiB)` : ', host unbounded') : ''} | ${r.plan ? `${r.plan.values} (${r.plan.matmuls} matmul${r.plan.mlps ? `; ${r.plan.mlpRecomputed} of ${r.plan.mlps} MLPs recompute gate/up` : ''})` : '-'} | ${f(r.plan && 100 * r.plan.overhead, 1)}% | ${f(r.plan?.predictedGiB)} | ${r.error ? `failed: ${r.error.slice(0, 80)}` : f(r.measuredGiB)} | ${f(r.nvidiaSmiGiB)} | ${r.error ? '-' : f(r.tokensPerSecond, 0)} |`);
  const md = [
    '| backend | B×T | budget GiB | gradients | ORT buffer cache | recomputed values | recompute FLOPs | predicted GiB | measured GiB (webgpu: live buffers; cpu: peak RSS) | nvidia-smi GiB | tok/s |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  console.log(md);
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, `${tag}.json`), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(out, `${tag}.table.md`), `${md}\n`);
}

const ci = process.argv.indexOf('--child');
if (ci > 0) {
  const [run, steps] = process.argv.slice(ci + 1);
  child(run, Number(steps))
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
    .catch((e) => { console.log(JSON.stringify({ run, ...parseRun(run), stepMs: [], losses: [], tokensPerSecond: 0, measuredGiB: 0, error: String(e?.message ?? e).slice(0, 600) })); process.exit(1); });
} else await parent();
