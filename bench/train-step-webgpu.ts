/**
 * Issue 5, acceptance 4: a full training step (forward, backward, clip, AdamW) of Qwen2-0.5B on the
 * `webgpu` backend (onnxruntime-web's WebGPU EP in Node on dawn.node + our WGSL kernels), fused and
 * unfused, at 8×256 and 8×512: peak GPU memory and tok/s next to the PyTorch / Liger-Kernel figures
 * for the same config (ANCHORS below: fp32, H200).
 *
 *   node --liftoff-only dist/bench/train-step-webgpu.js [--runs fused:8x256,unfused:8x256:all,...] [--steps 3] [--out DIR] [--config 0.5b|tiny] [--layers N] [--model FILE] [--profile] [--dispatch-profile] [--flce-chunk ROWS]
 *
 * With --model, a run may end in `:export` (e.g. fused:8x512:default:export): that run trains the
 * exported model FILE (e.g. a default-settings torch export; parameters adopted as `ortfuse train`
 * does) instead of the models/ builder graph of --config, so both sit side by side in one table.
 *
 * A run is variant:BxT[:kernels], variant fused, fused-mlp, fused-attn, fused-mlp-attn or unfused, with `-keep` (fused-keep): the backward
 * keeps its forward values instead of recomputing the cheap ones (src/autodiff/recompute.ts);
 * fused-mlp = fused plus each whole MLP as one SwiGLUMLP op (`--fuse-mlp`), run on our GEMM kernels
 * unless the run names its kernels (its default: default,mlp = flce,swiglu,mlp); its backward
 * keeps gate and up at fp32 and recomputes them under mixed precision (the default, `--mlp-recompute
 * auto`); fused-mlp-mlpkeep always keeps them (`--mlp-recompute off`: two GEMMs fewer per layer,
 * 2·[B·T, I] more per layer), fused-mlp-mlprecompute always recomputes them (`on`);
 * fused-attn and fused-mlp-attn add each layer's attention as one CausalAttention op
 * (`--fuse-attention`), run on our flash-attention kernels unless the run names its kernels
 * (default,attn; default,mlp,attn); a `-linear` suffix (fused-linear, fused-mlp-linear,
 * fused-mlp-attn-linear) adds each remaining projection by a parameter (the attention's q, k, v, o)
 * as one Linear op (`--fuse-linear`), run on our GEMM unless the run names its kernels
 * (default,linear; default,mlp,linear), and `-linear-stack` (fused-mlp-attn-linear-stack) stacks the
 * projections of one input, q, k and v, into one (`--stack-projections`); a final `-mixed` (fused-mlp-mixed, fused-mlp-linear-mixed)
 * trains with `--precision mixed` (the fused ops' GEMMs on f16 operands — the tensor cores where
 * Dawn offers them — and dynamic loss scaling; the row reports where the GEMMs ran). Kernels as
 * `ortfuse train --kernels` (all, none, default, or a '+'-joined list of flce, rmsnorm, swiglu, rope,
 * mlp, attn, linear and op=kernel|ort|native — '+' because ',' separates runs; e.g.
 * fused:8x512:default+rmsnorm=native+rope=native; default: the backend's default policy). Per run: ORT segments, ORT runs per step and host ms per ORT run (the
 * per-session-run overhead), host ms recording our kernel groups.
 *
 * Each run is its own child process (fresh device). GPU memory: nvidia-smi sampled every 50 ms
 * during the child, minus the idle reading before it; also the bytes of live WebGPU buffers counted
 * at createBuffer/destroy (ORT's pool and ours). The first step (shader compiles) is a warm-up;
 * tok/s is the mean of the others. Random token ids (seeded): the machine has no corpus.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { samplePeak } from './nvidia-smi.js';
import { StepProfiler, type StepProfile } from './stage-probe.js';

/**
 * PyTorch and Liger-Kernel fp32 figures: bench/anchor_torch.py (and --liger) on the H200, 2026-12-04
 * (bench/results/graph-capture-h200.md, call 4; torch 2.11, transformers 5.17, Liger-Kernel ead96b6;
 * their GiB is torch.cuda.max_memory_allocated). Earlier results used H100 figures.
 */
const ANCHORS: Record<string, { plainGiB: number; ligerGiB: number; plainTokS: number; ligerTokS: number }> = {
  '1x128': { plainGiB: 8.45, ligerGiB: 7.95, plainTokS: 1721, ligerTokS: 636 },
  '8x256': { plainGiB: 14.96, ligerGiB: 11.28, plainTokS: 12143, ligerTokS: 6893 },
  '8x512': { plainGiB: 25.62, ligerGiB: 17.27, plainTokS: 12544, ligerTokS: 9332 },
};

interface ChildResult {
  variant: string;
  /** 'builder' (models/ graph of --config) or 'export' (--model FILE). */
  source?: string;
  batch: number;
  seq: number;
  stepMs: number[];
  /** V8 garbage collection inside each step (ms, summed over its pauses): which slow steps a GC explains. */
  gcMs?: number[];
  tokensPerSecond: number;
  losses: number[];
  webgpuPeakMiB: number;
  largestBufferMiB: number;
  prepareMs: number;
  nodes: number;
  /** The per-op policy as a --kernels list, and what the stage plan did (undefined: one session). */
  kernels?: string;
  segments?: number;
  /** Segments run with graph capture (--settings capture). */
  captured?: number;
  kernelNodes?: number;
  ortRunsPerStep?: number;
  msPerOrtRun?: number;
  kernelMsPerStep?: number;
  /** Host segments (ORT's CPU EP: the batch's index arithmetic) run per step and host ms per run. */
  hostRunsPerStep?: number;
  msPerHostRun?: number;
  /** Steps replayed from the step tape, host ms per replay, kernel ms per recorded step (after the first), and why the last step was not a replay. */
  replayedSteps?: number;
  msPerReplay?: number;
  kernelMsPerRecordedStep?: number;
  replayNote?: string;
  /** --profile: one extra step with a GPU wait after every stage (bench/stage-probe.ts). */
  profile?: StepProfile & { stepMs: number };
  /** --dispatch-profile: host ms per step in each phase of recording our kernels (GpuContext.profile), over the steps after the first. */
  dispatchPhases?: Record<string, number>;
  /** Dispatches per step by program name (--dispatch-profile). */
  dispatchesByProgram?: Record<string, number>;
  /** --settings: the name of the cheap-settings row (Dawn flags, ORT EP options, --liftoff-only). */
  setting?: string;
  /** `-mixed` runs: where the f16-operand GEMMs ran (WebGpuTrainer.mixedGemm) and the steps skipped for a gradient overflow. */
  mixedGemm?: string;
  skipped?: number;
  error?: string;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

async function child(name: string, batch: number, seq: number, steps: number, kernels: string, modelFile?: string, epOptions?: Record<string, string>, profile = false): Promise<ChildResult> {
  // A `-mixed` suffix: --precision mixed (f16-operand GEMMs in the fused ops, dynamic loss scaling).
  const mixed = name.endsWith('-mixed');
  const variant = mixed ? name.slice(0, -'-mixed'.length) : name;
  const { buildQwen2 } = await import('../models/qwen2.js');
  const { PRESETS } = await import('../models/config.js');
  // --layers N: the preset with N decoder layers (e.g. tiny with 24: the 0.5B step's dispatches at the tiny sizes, for host costs on SwiftShader).
  const config = { ...PRESETS[arg('config', '0.5b')], ...(process.argv.includes('--layers') ? { num_hidden_layers: Number(arg('layers', '0')) } : {}) };
  const { prepareTraining } = await import('../src/runtime/session.js');
  const { nodeOrtWeb } = await import('../src/runtime/webgpu/ort-web-node.js');
  const { trainingSpec, parseKernels, formatKernels } = await import('../src/runtime/webgpu/training-spec.js');
  const { WebGpuTrainer } = await import('../src/runtime/webgpu/trainer.js');
  const { FUSED_OPS } = await import('../custom-ops/registry.js');
  const { StagedSteps } = await import('../src/runtime/webgpu/steps.js');
  const { dispatchProfile } = await import('../src/webgpu/context.js');
  const fuseMlp = variant.startsWith('fused-mlp');
  const fuseAttention = /^fused(-mlp)?-attn/.test(variant);
  const fuseLinear = /^fused.*-linear(-stack)?(-mlpkeep|-mlprecompute)?$/.test(variant);
  const stackProjections = fuseLinear && variant.includes('-linear-stack');
  const defaultKernels = ['default', ...(fuseMlp ? ['mlp'] : []), ...(fuseAttention ? ['attn'] : []), ...(fuseLinear ? ['linear'] : [])];
  const policy = kernels ? parseKernels(kernels.replace(/\+/g, ',')) : defaultKernels.length > 1 ? parseKernels(defaultKernels.join(',')) : {};
  const { rng } = await import('../src/random.js');
  const t0 = performance.now();
  const { loadFile } = await import('../src/onnx/io.js');
  const mlpRecompute = !fuseMlp ? undefined : variant.includes('-mlpkeep') ? 'off' as const : variant.includes('-mlprecompute') ? 'on' as const : undefined;
  const prepared = prepareTraining(modelFile ? loadFile(modelFile) : buildQwen2(config, { seed: 0 }), { fuse: variant.startsWith('fused'), fuseMlp, mlpRecompute, fuseAttention, fuseLinear, stackProjections, target: 'webgpu', recompute: !variant.endsWith('-keep'), ...(mixed ? { precision: 'mixed' as const } : {}) });
  // --flce-chunk N: the lm_head+loss kernel's rows per chunk (its chunk_size attribute; default 0 = flce.ts gpuChunkRows).
  const flceChunk = process.argv.includes('--flce-chunk') ? Number(arg('flce-chunk', '0')) : 0;
  if (flceChunk) {
    const { makeAttr } = await import('../src/ir/builder.js');
    for (const n of prepared.train.graph.nodes) if (n.opType.startsWith('FusedLinearCrossEntropy')) n.setAttr(makeAttr('chunk_size', flceChunk));
  }
  const prepareMs = performance.now() - t0;
  const { ort, meter } = await nodeOrtWeb({ f16Matrix: mixed });
  const spec = trainingSpec(prepared.train, prepared.initial, policy, { batch, seq });
  const trainer = await WebGpuTrainer.create(ort, spec, {
    optimizer: { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 1 },
    schedule: { lr: 1e-4, warmupSteps: 0, totalSteps: steps },
    graphCapture: process.argv.includes('--capture'),
    ...(process.argv.includes('--no-pool') ? { bufferPool: 0 } : {}),
    ...(process.argv.includes('--no-replay') ? { stepReplay: false } : {}),
    ...(process.argv.includes('--pool-gib') ? { bufferPool: Number(arg('pool-gib', '1')) * 2 ** 30 } : {}),
  }, FUSED_OPS, epOptions);
  const r = rng(7);
  const warm = { steps: 0, ortRuns: 0, ortMs: 0, kernelMs: 0, hostRuns: 0, hostMs: 0 };
  const stepMs: number[] = [];
  // V8's GC pauses (start, duration), to attribute them to the steps they fall in.
  const gcs: PerformanceEntry[] = [];
  const gcObserver = new PerformanceObserver((list) => { gcs.push(...list.getEntries()); });
  gcObserver.observe({ entryTypes: ['gc'] });
  const stepSpans: [number, number][] = [];
  const losses: number[] = [];
  let skipped = 0;
  for (let s = 0; s < steps; s++) {
    const ids = new BigInt64Array(batch * seq);
    for (let i = 0; i < ids.length; i++) ids[i] = BigInt(Math.floor(r() * prepared.vocab));
    const t = performance.now();
    const res = await trainer.train({ inputIds: ids, labels: ids.slice(), batch, seq });
    stepMs.push(performance.now() - t);
    stepSpans.push([t, performance.now()]);
    losses.push(res.loss);
    if (res.skipped) skipped++;
    // Stage times without the warm-up step (shader compiles).
    if (s === 0 && trainer.runner instanceof StagedSteps) Object.assign(warm, trainer.runner.times);
    if (s === 0 && process.argv.includes('--dispatch-profile')) trainer.ctx.profile = dispatchProfile();
  }
  await new Promise((done) => setImmediate(done)); // the observer's last entries
  gcObserver.disconnect();
  const gcMs = stepSpans.map(([a, b]) => gcs.filter((g) => g.startTime >= a && g.startTime < b).reduce((sum, g) => sum + g.duration, 0));
  let stepProfile: (StepProfile & { stepMs: number }) | undefined;
  if (profile && trainer.runner instanceof StagedSteps) {
    // One more step with a wait after every stage (bench/stage-probe.ts); not in tok/s.
    const profiler = new StepProfiler(trainer.ctx);
    trainer.runner.probe = profiler;
    const ids = new BigInt64Array(batch * seq).map((_, i) => BigInt(i % prepared.vocab));
    const t = performance.now();
    await trainer.train({ inputIds: ids, labels: ids.slice(), batch, seq });
    stepProfile = { ...profiler.result(), stepMs: performance.now() - t };
    trainer.runner.probe = undefined;
  }
  const phases = trainer.ctx.profile;
  trainer.ctx.profile = undefined;
  const measured = stepMs.slice(1);
  const mean = measured.reduce((a, b) => a + b, 0) / Math.max(1, measured.length);
  const runner = trainer.runner;
  const staged = runner instanceof StagedSteps ? {
    segments: spec.stages!.segments.length, captured: runner.capture?.segments.size ?? 0, kernelNodes: spec.stages!.plan.steps.filter((x) => x.kind === 'kernel').length,
    ortRunsPerStep: (runner.times.ortRuns - warm.ortRuns) / (runner.times.steps - warm.steps),
    msPerOrtRun: (runner.times.ortMs - warm.ortMs) / Math.max(1, runner.times.ortRuns - warm.ortRuns),
    kernelMsPerStep: (runner.times.kernelMs - warm.kernelMs) / (runner.times.steps - warm.steps),
    hostRunsPerStep: (runner.times.hostRuns - warm.hostRuns) / (runner.times.steps - warm.steps),
    msPerHostRun: (runner.times.hostMs - warm.hostMs) / Math.max(1, runner.times.hostRuns - warm.hostRuns),
    // Steps replayed from the step tape (src/webgpu/step-tape.ts) and their host ms each; recorded steps' kernel ms each.
    replayedSteps: runner.times.replays,
    msPerReplay: runner.times.replayMs / Math.max(1, runner.times.replays),
    kernelMsPerRecordedStep: (runner.times.kernelMs - warm.kernelMs - runner.times.replayMs) / Math.max(1, runner.times.steps - warm.steps - runner.times.replays),
    replayNote: trainer.replayNote ?? (runner.times.replays ? 'replayed' : 'off'),
  } : { segments: 1, ortRunsPerStep: 1 };
  await trainer.release();
  return {
    variant: name, batch, seq, stepMs, gcMs, losses, tokensPerSecond: (batch * seq * 1000) / mean,
    ...(mixed ? { mixedGemm: trainer.mixedGemm, skipped } : {}),
    webgpuPeakMiB: meter.peak / 2 ** 20, largestBufferMiB: meter.largest / 2 ** 20, prepareMs, nodes: prepared.train.graph.nodes.length,
    kernels: formatKernels(policy), ...staged, profile: stepProfile,
    ...(phases ? {
      dispatchPhases: Object.fromEntries(Object.entries(phases).filter(([k]) => k !== 'byProgram').map(([k, v]) => [k, (v as number) / Math.max(1, steps - 1)])),
      dispatchesByProgram: Object.fromEntries(Object.entries(phases.byProgram).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / Math.max(1, steps - 1)])),
    } : {}),
  };
}

const RANGE_TOGGLES = 'enable_integer_range_analysis_in_robustness,vulkan_use_buffer_robust_access_2';

/**
 * --settings (comma-separated names): the cheap settings of issue 12 side by side — Dawn create()
 * flags (ORTFUSE_DAWN_FLAGS), ORT-web WebGPU EP options, and V8's --liftoff-only for ORT's wasm.
 */
const SETTINGS: Record<string, { dawn?: string; ep?: Record<string, string>; liftoff: boolean; capture?: boolean; noPool?: boolean; noReplay?: boolean; poolGiB?: number; env?: Record<string, string> }> = {
  // default = the trainer's EP options (DEFAULT_EP_OPTIONS: validationMode 'disabled' since
  // issue 12); ort-default = none, ORT-web's own default (what 'default' meant in earlier results).
  default: { liftoff: true },
  'ort-default': { ep: {}, liftoff: true },
  'dawn-skip-validation': { dawn: 'enable-dawn-features=skip_validation', liftoff: true },
  // Dawn's bounds clamping of every buffer and workgroup-array access off (disable_robustness).
  // (Since session 14 these flags join the tensor-core toggles; before, dawn.node kept only the
  // last enable-dawn-features flag, so a mixed run under them lost the subgroup matrices.)
  'no-robustness': { dawn: 'enable-dawn-features=disable_robustness', liftoff: true },
  // Robustness kept, its software checks cut where they are provably not needed: Tint's integer
  // range analysis (no clamp on an index whose range fits) and Vulkan's robustBufferAccess2 for
  // storage buffers (hardware bounds instead of clamps, where the driver offers it). Session 15
  // (H200): no change in the mixed 8×512 step (22,094 vs 22,064 tok/s), nor with gemm-f16-blocks.
  range: { dawn: `enable-dawn-features=${RANGE_TOGGLES}`, liftoff: true },
  // gemm_f16's vec4 kernel with each operand's tile in per-subgroup blocks, so every matrix load
  // has a constant offset (F16Variant.blocks; ORTFUSE_GEMM_F16=blocks), alone and with `range`.
  'gemm-f16-blocks': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'blocks' } },
  // Each step's stats awaited at once, as before the trainer's ReadbackPacer (dawn.node's event poll spins through the GPU's step).
  'no-pacer': { liftoff: true, env: { ORTFUSE_READBACK_PACER: 'off' } },
  'blocks-range': { dawn: `enable-dawn-features=${RANGE_TOGGLES}`, liftoff: true, env: { ORTFUSE_GEMM_F16: 'blocks' } },
  // gemmF32 as before session 7's sweeps (ORTFUSE_GEMM_F32=legacy: no prefetch, no unrolling, the old K split).
  'gemm-legacy': { liftoff: true, env: { ORTFUSE_GEMM_F32: 'legacy' } },
  // gemm_f16's kernel and K split as before session 13 (ORTFUSE_GEMM_F16=legacy; src/webgpu/gemm-f16-plan.ts f16Plan).
  'gemm-f16-legacy': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'legacy' } },
  // gemm_f16's vec4 kernel on a 64×64 tile where the scalar-staged one would run (attention's batched products, k/v).
  'gemm-f16-vec64': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'vec64' } },
  // gemm_f16's vec4 kernel double-buffered (one barrier per K step; ORTFUSE_GEMM_F16=double).
  'gemm-f16-double': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'double' } },
  // Every f16 GEMM the experimental kernels take on them (src/webgpu/gemm-f16-direct.ts, operands converted to f16 per call).
  'gemm-f16-staged': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'staged' } },
  'gemm-f16-direct': { liftoff: true, env: { ORTFUSE_GEMM_F16: 'direct' } },
  'ort-validation-disabled': { ep: { validationMode: 'disabled' }, liftoff: true },
  both: { dawn: 'enable-dawn-features=skip_validation', ep: { validationMode: 'disabled' }, liftoff: true },
  'no-liftoff': { liftoff: false },
  'ort-validation-disabled-no-liftoff': { ep: { validationMode: 'disabled' }, liftoff: false },
  'both-no-liftoff': { dawn: 'enable-dawn-features=skip_validation', ep: { validationMode: 'disabled' }, liftoff: false },
  // The trainer's graph capture of the segments that read no host input (src/runtime/webgpu/capture.ts).
  capture: { liftoff: true, capture: true },
  // Every step recorded: no replay of the step tape (TrainerOptions.stepReplay false).
  'no-replay': { liftoff: true, noReplay: true },
  // Our kernels' buffers destroyed when released instead of reused by size (TrainerOptions.bufferPool 0).
  'no-pool': { liftoff: true, noPool: true },
  // Our kernels' buffer pool at 3 GiB instead of DEFAULT_POOL_BYTES (1 GiB): fewer buffers created per step.
  'pool-3g': { liftoff: true, poolGiB: 3 },
  // A pool that never trims: each step reuses every buffer the step before released (same shapes).
  'pool-keep': { liftoff: true, poolGiB: 64 },
};

/** --profile: the profiled step of each run (bench/stage-probe.ts), one row each. */
function profileTable(results: ChildResult[]): string[] {
  const p = results.filter((r) => r.profile);
  if (!p.length) return [];
  const f = (x: number) => x.toFixed(0);
  return ['', 'Profiled step (a GPU wait after every stage; ms): ORT host = until run() resolved, ORT wait = then until the queue drained; our kernels GPU = timestamp queries per op (else wait).', '',
    '| B×T | setting | step ms (profiled) | ORT runs | ORT host | ORT wait | our kernel calls / dispatches | our kernels GPU ms by op | kernel wait | top segments [seg, host, wait] |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...p.map((r) => { const q = r.profile!; return `| ${r.batch}×${r.seq} | ${r.setting ?? 'default'} | ${f(q.stepMs)} | ${q.ortRuns} | ${f(q.ortHostMs)} | ${f(q.ortWaitMs)} | ${q.kernelCalls} / ${q.dispatches} | ${q.kernelGpuMs ? Object.entries(q.kernelGpuMs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ') : 'no timestamp-query'} | ${f(q.kernelWaitMs)} | ${q.topSegments.map((x) => `[${x[0]}, ${f(x[1])}, ${f(x[2])}]`).join(' ')} |`; })];
}

async function parent(): Promise<void> {
  const runs = arg('runs', 'unfused:8x256,fused:8x256,unfused:8x512,fused:8x512').split(',');
  const steps = arg('steps', '3');
  const out = arg('out', 'bench/results');
  const self = fileURLToPath(import.meta.url);
  const results: (ChildResult & { gpuPeakMiB?: number })[] = [];
  const settings = arg('settings', 'default').split(',');
  for (const name of settings) if (!SETTINGS[name]) throw new Error(`--settings: unknown '${name}' (${Object.keys(SETTINGS).join(', ')})`);
  for (const run of runs) for (const setting of settings) {
    const set = SETTINGS[setting];
    const [variant, shape, kernels = '', source = 'builder'] = run.split(':');
    const [b, t] = shape.split('x');
    const smi = samplePeak();
    const res = await new Promise<ChildResult>((resolve) => {
      // execArgv: a loader the parent runs under (tsx) runs the child too.
      const childArgs = [self, '--child', variant, b, t, steps, kernels || '-', source === 'export' ? arg('model', '') : '-', '--config', arg('config', '0.5b'), ...(process.argv.includes('--layers') ? ['--layers', arg('layers', '0')] : []), ...(process.argv.includes('--flce-chunk') ? ['--flce-chunk', arg('flce-chunk', '0')] : []), ...(set.ep ? ['--ep', JSON.stringify(set.ep)] : []), ...(process.argv.includes('--profile') ? ['--profile'] : []), ...(process.argv.includes('--dispatch-profile') ? ['--dispatch-profile'] : []), ...(set.capture ? ['--capture'] : []), ...(set.noPool ? ['--no-pool'] : []), ...(set.noReplay ? ['--no-replay'] : []), ...(set.poolGiB ? ['--pool-gib', String(set.poolGiB)] : [])];
      const env = { ...process.env, ...(set.dawn ? { ORTFUSE_DAWN_FLAGS: set.dawn } : {}), ...(set.liftoff ? {} : { ORTFUSE_NO_LIFTOFF: '1' }), ...set.env };
      const c = spawn(process.execPath, [...process.execArgv, ...(set.liftoff ? ['--liftoff-only'] : []), '--max-old-space-size=16384', ...childArgs], { stdio: ['ignore', 'pipe', 'inherit'], env });
      let text = '';
      c.stdout.on('data', (d: Buffer) => (text += d.toString()));
      c.on('close', (code) => {
        const line = text.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(line));
        } catch {
          resolve({ variant, batch: +b, seq: +t, stepMs: [], tokensPerSecond: 0, losses: [], webgpuPeakMiB: 0, largestBufferMiB: 0, prepareMs: 0, nodes: 0, error: `exit ${code}: ${text.slice(-500)}` });
        }
      });
    });
    results.push({ ...res, source, setting, gpuPeakMiB: smi.stop() });
    console.log(JSON.stringify(results[results.length - 1]));
  }
  const rows = results.map((r) => {
    const a = ANCHORS[`${r.batch}x${r.seq}`];
    const gib = (r.gpuPeakMiB ?? 0) / 1024;
    return `| ${r.batch}×${r.seq} | ${r.variant}${r.source === 'export' ? ' (torch export)' : ''} | ${r.setting ?? 'default'} | ${r.kernels ?? '-'} | ${r.segments ?? '-'}${r.captured ? ` (${r.captured} captured)` : ''}${r.hostRunsPerStep ? ` (${r.hostRunsPerStep} on the host, ${r.msPerHostRun!.toFixed(1)} ms)` : ''} | ${r.ortRunsPerStep ? r.msPerOrtRun?.toFixed(1) ?? '-' : 'no run'} | ${r.kernelMsPerRecordedStep?.toFixed(1) ?? '-'} / ${r.replayedSteps ? `${r.msPerReplay!.toFixed(1)} (${r.replayedSteps})` : '-'} | ${r.error ? 'failed' : gib.toFixed(2)} | ${(r.webgpuPeakMiB / 1024).toFixed(2)} | ${r.error ? '-' : r.tokensPerSecond.toFixed(0)} | ${r.stepMs.map((x) => x.toFixed(0)).join(', ')} | ${a ? `${a.plainGiB} / ${a.ligerGiB}` : '-'} | ${a ? `${a.plainTokS} / ${a.ligerTokS}` : '-'} |`;
  });
  const md = [
    '| B×T | ortfuse | setting | kernels | ORT segments | host ms per ORT run | our host ms a step: recorded / replayed (replays) | peak GPU GiB (nvidia-smi) | WebGPU buffers peak GiB | tok/s | step ms (first = warm-up) | PyTorch / Liger GiB | PyTorch / Liger tok/s |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    ...profileTable(results),
  ].join('\n');
  console.log(md);
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'train-step-webgpu.json'), JSON.stringify(results, null, 2));
  fs.writeFileSync(path.join(out, 'train-step-webgpu.table.md'), `${md}\n`);
}

const ci = process.argv.indexOf('--child');
if (ci > 0) {
  const [variant, b, t, steps, kernels, model] = process.argv.slice(ci + 1);
  child(variant, +b, +t, +steps, kernels === '-' ? '' : kernels, model === '-' ? undefined : model, process.argv.includes('--ep') ? JSON.parse(arg('ep', '{}')) : undefined, process.argv.includes('--profile'))
    .then((r) => { console.log(JSON.stringify(r)); process.exit(0); })
    .catch((e) => { console.log(JSON.stringify({ variant, batch: +b, seq: +t, stepMs: [], tokensPerSecond: 0, losses: [], webgpuPeakMiB: 0, largestBufferMiB: 0, prepareMs: 0, nodes: 0, error: String(e?.message ?? e).slice(0, 800) })); process.exit(1); });
} else await parent();
