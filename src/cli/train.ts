/**
 * `ortfuse train [model.onnx] --steps N --batch B --seq T --lr X [--text FILE] [--no-fuse]
 * [--seed N] [--json FILE] [--plot FILE] [--backend cpu|webgpu] [--precision fp32|mixed] [--kernels all|none|default|flce,rmsnorm,swiglu,rope|op=kernel|ort|native,...]`: train an exported model with labels → loss (fused
 * unless --no-fuse) on the cpu or webgpu backend, with a progress bar, a JSON record per step and the loss
 * curve as SVG. Without a model, the built-in tiny Qwen2 trains on Moby Dick. Checks run before
 * the first step (./train-preflight.ts, src/runtime/train.ts); Ctrl-C saves a checkpoint and
 * prints the command that resumes (./train-session.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { fail, SIGNAL_EXIT_CODES } from '../errors.js';
import { loadFile } from '../onnx/io.js';
import { getTokenizer } from '../data/tokenizer.js';
import { vocabSize } from '../runtime/session.js';
import { defaultWarmup } from '../runtime/run-checks.js';
import { runTraining, type StepRecord, type StopInfo, type TrainOptions } from '../runtime/train.js';
import type { ScheduleKind } from '../runtime/optimizer.js';
import { gib } from '../runtime/memory-estimate.js';
import { MLP_RECOMPUTE, parseSize, type MlpRecompute } from '../runtime/memory-budget.js';
import { describePlan } from '../autodiff/recompute-plan.js';
import { lossChartSvg } from '../report/plot.js';
import type { CliCommand, CliIO } from './command.js';
import { demoModel } from '../training/demo.js';
import { describeParameters } from '../params/select.js';
import { preflight } from './train-preflight.js';
import { freeCheckpointName, JsonLines, ProgressView, resumeCommand, StopSignals } from './train-session.js';

export interface TrainArgs extends TrainOptions {
  input?: string;
  text?: string;
  /** --eval-text FILE (the option evalText of TrainOptions holds its contents). */
  evalTextFile?: string;
  /** qwen, bytes, or undefined: qwen when the model's vocabulary holds Qwen2's, else bytes. */
  tokenizer?: string;
  maxTime?: string;
  json?: string;
  plot?: string;
  backend: string;
  progress: boolean;
  /** --lora SETTINGS and --lora-init DIR, resolved into `lora` by the preflight. */
  loraSpec?: string;
  loraInit?: string;
}

function num(v: unknown, name: string, int = true): number {
  const n = Number(v);
  if (v === undefined) return undefined as unknown as number;
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) fail('usage', `--${name} must be ${int ? 'an integer' : 'a number'} (got '${v}')`);
  return n;
}

function globs(v: unknown): string[] | undefined {
  return v === undefined ? undefined : String(v).split(',').map((g) => g.trim()).filter((g) => g.length > 0);
}

export const trainCommand: CliCommand<TrainArgs> = {
  name: 'train',
  configure(cmd: Command) {
    cmd
      .description('train a model with labels → loss on text (fused unless --no-fuse); without a model, the built-in tiny Qwen2')
      .argument('[model]', 'ONNX training export (inputs input_ids, labels; output loss)')
      .option('--steps <n>', 'optimizer steps', '50')
      .option('--batch <n>', 'sequences per batch', '4')
      .option('--seq <n>', 'tokens per sequence', '64')
      .option('--lr <x>', 'peak learning rate (AdamW; warm-up then --schedule)', '1e-3')
      .option('--grad-accum <n>', 'micro-batches of --batch sequences per optimizer step (cpu; loss and gradients weighted by target tokens)', '1')
      .option('--text <file>', 'UTF-8 training text (default: Moby Dick)')
      .option('--eval-text <file>', 'UTF-8 validation text (default: the last 5% of the training text)')
      .option('--tokenizer <kind>', 'qwen (Qwen2 BPE) or bytes (UTF-8 bytes, ids 0-255) (default: qwen when the model\'s vocabulary holds Qwen2\'s, else bytes)')
      .option('--no-fuse', 'train the graph as exported, without the fusions')
      .option('--fuse-mlp', 'also fuse each whole SwiGLU MLP (gate, up, SwiGLU, down) into one SwiGLUMLP op (default on the webgpu backend, where it runs on our GEMM kernels: 0.5B 8x512 11.5 instead of 17.0 GiB; off on cpu)')
      .option('--mlp-recompute <mode>', "with the fused MLP: its backward recomputes gate and up (on: keeps only x, two more GEMMs per layer), reads them kept from the forward (off: 2 x [B*T, I] more per layer), or auto: off on webgpu at fp32 (under --memory-budget: kept where the budget allows), on on cpu and under --precision mixed", 'auto')
      .option('--fuse-attention', "also fuse each layer's causal attention into one CausalAttention op whose backward recomputes the probabilities (default on the webgpu backend, where it runs on our batched GEMMs; off on cpu)")
      .option('--no-fuse-attention', 'keep the attention as ORT MatMul/Softmax nodes (the default on cpu)')
      .option('--fuse-linear', "also fuse each remaining projection by a parameter (the attention's q, k, v with bias, o) into one Linear op, run on our GEMM by the webgpu kernels (default on the webgpu backend; off on cpu)")
      .option('--no-fuse-linear', 'keep the projections as ORT MatMuls (the default on cpu)')
      .option('--stack-projections', "with the fused projections: those that read one input (q, k, v) as one Linear over their stacked weights and a Split (off by default until measured on a GPU)")
      .option('--no-fuse-mlp', 'keep the MLP as MatMuls around the SwiGLU op (the webgpu default before 2026-12-04)')
      .option('--seed <n>', 'seed for batch order', '0')
      .option('--warmup <n>', 'warm-up steps (default: min(10, steps/10))')
      .option('--schedule <kind>', 'learning rate after the warm-up: cosine, linear (both down to --min-lr-ratio x lr) or constant', 'cosine')
      .option('--min-lr-ratio <x>', 'final learning rate of the cosine and linear schedules, as a fraction of --lr', '0.1')
      .option('--weight-decay <x>', 'AdamW weight decay', '0.01')
      .option('--clip <x>', 'clip the global gradient norm (0 = off)', '1')
      .option('--precision <mode>', "fp32, or mixed: f16 GEMM operands (fp32 accumulation) in the fused MLP and linear-CE ops, fp32 master weights, AdamW and activations, dynamic loss scaling (a step whose gradients overflow is skipped and the scale halves); needs the fusions", 'fp32')
      .option('--initial-loss-scale <x>', 'with --precision mixed: the loss scale of the first step (default 65536 = 2^16; doubled after 2000 finite steps, halved on an overflow)')
      .option('--eval-every <n>', 'validation loss every N steps (always at the end)', '0')
      .option('--max-time <duration>', 'stop cleanly with a checkpoint once a step ends after this long, e.g. 90s, 30m, 2h')
      .option('--memory-budget <size>', 'fit one step into SIZE (e.g. 12GiB; cpu: peak RSS, webgpu: GPU buffers): the backward recomputes what a cost model picks (least extra work); refused before training when it cannot fit')
      .option('--backend <name>', 'cpu (onnxruntime-node) or webgpu (onnxruntime-web WebGPU EP on dawn.node)', 'cpu')
      .option('--graph-capture', 'webgpu: run the ORT segments that read no host input as onnxruntime-web graph captures (recorded once, replayed each step: less host time per step, much more GPU memory: every intermediate stays allocated; not with --memory-budget; experimental: see bench/results/graph-capture-h200.md)')
      .option('--no-step-replay', 'webgpu: record every step; by default, once two consecutive steps recorded the same GPU commands, the next steps replay them without running the kernels\' host code again (same results, bit for bit)')
      .option('--kernels <ops>', "webgpu: per fused op, our WGSL kernel between ORT segments, ORT running its ONNX body, or (rmsnorm, rope) 'native' = ONNX RMSNormalization-23 / RotaryEmbedding-23 run by ORT: a comma list read left to right from all-in-ORT — all, none, default (= every op on our kernel, the glue too), an op name (flce, rmsnorm, swiglu, rope, mlp, attn, linear: our kernel; mlp acts on fused MLPs, attn on fused attention, linear on fused projections) or op=kernel|ort|native; e.g. default,rmsnorm=native,rope=native (default: default)")
      .option('--json <file>', 'write one JSON record per step (JSON lines)')
      .option('--plot <file>', 'loss curve as SVG (default: <json>.svg when --json is given)')
      .option('--trainable <globs>', "train only parameters matching these globs (comma-separated; torch names where the export records them, e.g. 'model.layers.*.mlp.*'; default: all)")
      .option('--freeze <globs>', "keep parameters matching these globs fixed (comma-separated, e.g. 'model.embed_tokens.weight')")
      .option('--save-weights <file>', 'write the trained weights as safetensors under the torch names at the end (transformers load_state_dict / from_pretrained)')
      .option('--save-model <file>', 'write the exported ONNX model with the trained weights at the end (runs in any ONNX Runtime; with --lora: needs --merge)')
      .option('--lora <settings>', "train low-rank adapters on a frozen model: r=16,alpha=32,dropout=0,targets=q,k,v,o,gate,up,down (targets: short names q k v o gate up down, or globs on torch module names; defaults r=8, alpha=8, all seven)")
      .option('--lora-init <dir>', 'start the adapters from a PEFT adapter directory (adapter_model.safetensors, adapter_config.json); implies --lora')
      .option('--save-adapter <dir>', 'with --lora: write the trained adapter as PEFT files (adapter_model.safetensors, adapter_config.json) into DIR at the end')
      .option('--merge', 'with --lora: --save-weights and --save-model get the merged weights W + s·B·A')
      .option('--checkpoint <file>', 'write a checkpoint at the end, every --save-every steps, and when stopped early')
      .option('--save-every <n>', 'write --checkpoint every N steps (0 = only at the end and when stopped)', '0')
      .option('--keep-last <k>', 'also keep the last K periodic checkpoints as <stem>.step-NNNNNN<ext>', '0')
      .option('--resume <file>', 'resume from a checkpoint (same model, batch shape, seed and optimizer settings)')
      .option('--no-progress', 'no progress bar (one line per step instead)');
  },
  parse(positionals, o) {
    if (o.fuse === false && o.fuseMlp === true) fail('usage', '--fuse-mlp and --no-fuse contradict each other');
    if (!MLP_RECOMPUTE.includes(o.mlpRecompute as MlpRecompute)) fail('usage', `--mlp-recompute ${o.mlpRecompute}: expected one of ${MLP_RECOMPUTE.join(', ')}`);
    if (o.fuse === false && o.fuseAttention === true) fail('usage', '--fuse-attention and --no-fuse contradict each other');
    if (o.fuse === false && o.fuseLinear === true) fail('usage', '--fuse-linear and --no-fuse contradict each other');
    if (o.stackProjections === true && (o.fuse === false || o.fuseLinear === false)) fail('usage', `--stack-projections stacks the fused projections: drop ${o.fuse === false ? '--no-fuse' : '--no-fuse-linear'}`);
    return {
      input: positionals[0] as string | undefined,
      steps: num(o.steps, 'steps'),
      batch: num(o.batch, 'batch'),
      seq: num(o.seq, 'seq'),
      lr: num(o.lr, 'lr', false),
      seed: num(o.seed, 'seed'),
      fuse: o.fuse !== false,
      fuseMlp: o.fuseMlp as boolean | undefined,
      mlpRecompute: o.mlpRecompute === 'auto' ? undefined : o.mlpRecompute as MlpRecompute,
      fuseAttention: o.fuseAttention as boolean | undefined,
      fuseLinear: o.fuseLinear as boolean | undefined,
      ...(o.stackProjections === true ? { stackProjections: true } : {}),
      warmup: o.warmup === undefined ? undefined : num(o.warmup, 'warmup'),
      weightDecay: num(o.weightDecay, 'weight-decay', false),
      maxGradNorm: num(o.clip, 'clip', false),
      precision: o.precision as TrainArgs['precision'],
      initialLossScale: o.initialLossScale === undefined ? undefined : num(o.initialLossScale, 'initial-loss-scale', false),
      schedule: o.schedule as ScheduleKind,
      minLrRatio: num(o.minLrRatio, 'min-lr-ratio', false),
      gradAccum: num(o.gradAccum, 'grad-accum'),
      evalEvery: num(o.evalEvery, 'eval-every'),
      saveEvery: num(o.saveEvery, 'save-every'),
      keepLast: num(o.keepLast, 'keep-last'),
      maxTime: o.maxTime as string | undefined,
      text: o.text as string | undefined,
      evalTextFile: o.evalText as string | undefined,
      tokenizer: (o.tokenizer as string | undefined) ?? (positionals[0] ? undefined : 'bytes'),
      json: o.json as string | undefined,
      plot: (o.plot as string | undefined) ?? (o.json ? `${String(o.json).replace(/\.jsonl?$/, '')}.svg` : undefined),
      checkpoint: o.checkpoint as string | undefined,
      trainable: globs(o.trainable),
      freeze: globs(o.freeze),
      saveWeights: o.saveWeights as string | undefined,
      saveModel: o.saveModel as string | undefined,
      loraSpec: o.lora as string | undefined,
      loraInit: o.loraInit as string | undefined,
      saveAdapter: o.saveAdapter as string | undefined,
      merge: o.merge === true,
      resume: o.resume as string | undefined,
      backend: o.backend as string,
      kernels: o.kernels as string | undefined,
      graphCapture: o.graphCapture === true ? true : undefined,
      stepReplay: o.stepReplay === false ? false : undefined,
      memoryBudget: o.memoryBudget === undefined ? undefined : parseSize(String(o.memoryBudget)) ?? fail('usage', `--memory-budget ${o.memoryBudget}: expected a size such as 12GiB, 800MiB or 16GB`),
      progress: o.progress !== false,
    };
  },
  async run(a, io) {
    return runTrain(a, io);
  },
};

async function runTrain(a: TrainArgs, io: CliIO): Promise<number> {
  const c = preflight(a, io.cwd);
  const model = c.model ? loadFile(c.model) : demoModel();
  const tok = await getTokenizer(a.tokenizer ?? (vocabSize(model) >= 151643 ? 'qwen' : 'bytes'));
  const json = c.json ? new JsonLines(c.json) : undefined;
  const view = new ProgressView(a.progress && process.stderr.isTTY === true);
  const signals = new StopSignals(() => view.stop());
  const shown = (f: string) => (path.relative(io.cwd, f).startsWith('..') ? f : path.relative(io.cwd, f));
  let stopped: StopInfo | undefined;
  let records: StepRecord[];
  try {
    records = await runTraining(model, c.text, tok, {
      ...a, checkpoint: c.checkpoint, resume: c.resume, evalText: c.evalText, maxTimeMs: c.maxTimeMs, saveWeights: c.saveWeights, saveModel: c.saveModel, lora: c.lora, saveAdapter: c.saveAdapter,
      fallbackCheckpoint: () => freeCheckpointName(io.cwd),
    }, {
      onStart({ parameters, prepared, startStep, backend, memory }) {
        const fused = prepared.report?.passes.reduce((s, p) => s + Object.values(p.counts).reduce((x, y) => x + y, 0), 0) ?? 0;
        const accum = a.gradAccum ?? 1;
        const where = backend.name === 'webgpu'
          ? `backend webgpu on ${backend.device}${backend.software ? ' (software adapter)' : ''}, kernels ${a.kernels ?? 'default (flce,rmsnorm,swiglu,rope,mlp,attn,linear,glue)'}${backend.captured ? `, graph capture of ${backend.captured.segments} of ${backend.captured.of} ORT segments (experimental)` : ''}`
          : `backend cpu (${backend.device})`;
        io.stdout(`training ${a.input ?? 'built-in tiny Qwen2'}: ${(parameters / 1e6).toFixed(2)}M parameters, ${prepared.upcast ? `upcast from ${prepared.upcast.from.join(' and ')} to fp32, ` : ''}${a.fuse ? `fused (${fused} rewrites)` : 'unfused'}, batch ${a.batch}×${a.seq}${accum > 1 ? ` × ${accum} micro-batches` : ''}, ${a.steps} steps, tokenizer ${tok.name}, ${where}, ${backend.precision}, step memory about ${gib(memory.bytes)} (estimate)\n`);
        if (backend.mixed) io.stdout(`  mixed precision: f16 GEMM operands in ${backend.mixed.marked} fused op${backend.mixed.marked === 1 ? '' : 's'}${backend.mixed.marked ? '' : " (this build's ops take none: loss scaling only)"}, fp32 master weights, AdamW and activations; dynamic loss scale from ${backend.mixed.initialScale}${backend.mixed.gemm ? `; GEMMs: ${backend.mixed.gemm}` : ''}\n`);
        io.stdout(`  lr ${a.lr} (warm-up ${a.warmup ?? defaultWarmup(a.steps)}, ${a.schedule ?? 'cosine'}${a.schedule === 'constant' ? '' : ` to ${a.minLrRatio ?? 0.1} x`}), weight decay ${a.weightDecay}, clip ${a.maxGradNorm}, seed ${a.seed}${startStep ? `, resuming after step ${startStep}` : ''}\n`);
        if (prepared.memory) io.stdout(`  ${describePlan(prepared.memory, a.memoryBudget)}\n`);
        for (const line of describeParameters(prepared.parameterReport)) io.stdout(`${line}\n`);
        if (backend.software) io.stderr(`ortfuse: warning: ${backend.device} is a software adapter (WebGPU on the CPU): training runs far slower than with --backend cpu\n`);
        json?.begin(c.resume ? startStep : 0);
        signals.install();
        view.start(a.steps, startStep);
      },
      onStep(r) {
        json?.write(r);
        if (view.enabled) view.update(r);
        else io.stdout(`step ${r.step} loss ${r.loss.toFixed(4)}${r.valLoss !== undefined ? ` val ${r.valLoss.toFixed(4)}` : ''} lr ${r.lr.toExponential(2)} ${r.tokensPerSecond.toFixed(0)} tok/s peak ${r.peakRssMiB.toFixed(0)} MiB${r.peakGpuMiB !== undefined ? `, GPU ${r.peakGpuMiB.toFixed(1)} MiB` : ''}${r.lossScale !== undefined ? ` loss scale ${r.lossScale}${r.skipped ? ' SKIPPED (gradients overflowed; scale halved)' : ''}` : ''}\n`);
      },
      stopRequested: () => signals.requested,
      onStop(s) {
        stopped = s;
      },
    });
  } finally {
    view.stop();
    signals.dispose();
  }
  const last = records[records.length - 1];
  const skipped = records.filter((r) => r.skipped).map((r) => r.step);
  const scaling = last?.lossScale !== undefined ? `; ${skipped.length} step${skipped.length === 1 ? '' : 's'} skipped on overflow${skipped.length ? ` (${skipped.slice(0, 10).join(', ')}${skipped.length > 10 ? ', ...' : ''})` : ''}, last loss scale ${last.lossScale}` : '';
  if (last) io.stdout(`${stopped ? 'stopped' : 'done'}: loss ${records[0].loss.toFixed(4)} → ${last.loss.toFixed(4)}${last.valLoss !== undefined ? `, validation ${last.valLoss.toFixed(4)}` : ''}${scaling}\n`);
  if (c.saveWeights && !stopped) io.stdout(`weights: ${shown(c.saveWeights)}\n`);
  if (c.saveModel && !stopped) io.stdout(`model: ${shown(c.saveModel)}\n`);
  if (c.saveAdapter && !stopped) io.stdout(`adapter: ${shown(c.saveAdapter)}\n`);
  if (c.plot && records.length) {
    fs.writeFileSync(c.plot, await lossChartSvg([{ name: a.fuse ? 'fused' : 'unfused', points: [...(json?.previous ?? []), ...records] }]));
    io.stdout(`loss curve: ${c.plot}\n`);
  }
  if (!stopped) return 0;
  const why = stopped.reason === 'max-time' ? `stopped at --max-time ${a.maxTime}` : `interrupted by ${stopped.reason}`;
  io.stderr(`ortfuse: ${why} after step ${stopped.step} of ${a.steps}; checkpoint ${shown(stopped.checkpoint)}; resume with: ${resumeCommand(io.argv ?? [], shown(stopped.checkpoint))}\n`);
  return stopped.reason === 'max-time' ? 0 : SIGNAL_EXIT_CODES[stopped.reason as 'SIGINT' | 'SIGTERM'] ?? 130;
}
