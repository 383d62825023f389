/**
 * `ortfuse train [model.onnx] --steps N --batch B --seq T --lr X [--text FILE] [--no-fuse]
 * [--seed N] [--json FILE] [--plot FILE] [--backend cpu|webgpu] [--kernels all|none|default|flce,rmsnorm,swiglu,rope|op=kernel|ort|native,...]`: train an exported model with labels → loss (fused
 * unless --no-fuse) on the cpu or webgpu backend, with a progress bar, a JSON record per step and the loss
 * curve as SVG. Without a model, the built-in tiny Qwen2 trains on Moby Dick.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { fail } from '../errors.js';
import { loadFile } from '../onnx/io.js';
import { mobyDick, readText } from '../data/corpus.js';
import { getTokenizer } from '../data/tokenizer.js';
import { BACKENDS, runTraining, type StepRecord, type TrainOptions } from '../runtime/train.js';
import { lossChartSvg } from '../report/plot.js';
import type { CliCommand, CliIO } from './command.js';
import { demoModel } from './demo.js';
import { describeParameters } from '../params/select.js';

export interface TrainArgs extends TrainOptions {
  input?: string;
  text?: string;
  tokenizer: string;
  json?: string;
  plot?: string;
  backend: string;
  progress: boolean;
}

function num(v: unknown, name: string, int = true): number {
  const n = Number(v);
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
      .option('--lr <x>', 'peak learning rate (AdamW; warm-up then cosine)', '1e-3')
      .option('--text <file>', 'UTF-8 training text (default: Moby Dick)')
      .option('--tokenizer <kind>', 'qwen (Qwen2 BPE) or bytes (UTF-8 bytes, ids 0-255)')
      .option('--no-fuse', 'train the graph as exported, without the fusions')
      .option('--seed <n>', 'seed for batch order', '0')
      .option('--warmup <n>', 'warm-up steps')
      .option('--weight-decay <x>', 'AdamW weight decay', '0.01')
      .option('--clip <x>', 'clip the global gradient norm (0 = off)', '1')
      .option('--eval-every <n>', 'validation loss every N steps (always at the end)', '0')
      .option('--backend <name>', 'cpu (onnxruntime-node) or webgpu (onnxruntime-web WebGPU EP on dawn.node)', 'cpu')
      .option('--kernels <ops>', "webgpu: per fused op, our WGSL kernel between ORT segments, ORT running its ONNX body, or (rmsnorm, rope) 'native' = ONNX RMSNormalization-23 / RotaryEmbedding-23 run by ORT: a comma list read left to right from all-in-ORT — all, none, default (= flce,swiglu), an op name (flce, rmsnorm, swiglu, rope: our kernel) or op=kernel|ort|native; e.g. default,rmsnorm=native,rope=native (default: flce,swiglu)")
      .option('--json <file>', 'write one JSON record per step (JSON lines)')
      .option('--plot <file>', 'loss curve as SVG (default: <json>.svg when --json is given)')
      .option('--trainable <globs>', "train only parameters matching these globs (comma-separated; torch names where the export records them, e.g. 'model.layers.*.mlp.*'; default: all)")
      .option('--freeze <globs>', "keep parameters matching these globs fixed (comma-separated, e.g. 'model.embed_tokens.weight')")
      .option('--save-weights <file>', 'write the trained weights as safetensors under the torch names at the end (transformers load_state_dict / from_pretrained)')
      .option('--save-model <file>', 'write the exported ONNX model with the trained weights at the end (runs in any ONNX Runtime)')
      .option('--checkpoint <file>', 'write a checkpoint at the end')
      .option('--resume <file>', 'resume from a checkpoint')
      .option('--no-progress', 'no progress bar (one line per step instead)');
  },
  parse(positionals, o) {
    return {
      input: positionals[0] as string | undefined,
      steps: num(o.steps, 'steps'),
      batch: num(o.batch, 'batch'),
      seq: num(o.seq, 'seq'),
      lr: num(o.lr, 'lr', false),
      seed: num(o.seed, 'seed'),
      fuse: o.fuse !== false,
      warmup: o.warmup === undefined ? undefined : num(o.warmup, 'warmup'),
      weightDecay: num(o.weightDecay, 'weight-decay', false),
      maxGradNorm: num(o.clip, 'clip', false),
      evalEvery: num(o.evalEvery, 'eval-every'),
      text: o.text as string | undefined,
      tokenizer: (o.tokenizer as string | undefined) ?? (positionals[0] ? 'qwen' : 'bytes'),
      json: o.json as string | undefined,
      plot: (o.plot as string | undefined) ?? (o.json ? `${String(o.json).replace(/\.jsonl?$/, '')}.svg` : undefined),
      checkpoint: o.checkpoint as string | undefined,
      trainable: globs(o.trainable),
      freeze: globs(o.freeze),
      saveWeights: o.saveWeights as string | undefined,
      saveModel: o.saveModel as string | undefined,
      resume: o.resume as string | undefined,
      backend: o.backend as string,
      kernels: o.kernels as string | undefined,
      progress: o.progress !== false,
    };
  },
  async run(a, io) {
    await runTrain(a, io);
  },
};

async function runTrain(a: TrainArgs, io: CliIO): Promise<void> {
  if (!(BACKENDS as readonly string[]).includes(a.backend)) fail('usage', `--backend ${a.backend}: expected one of ${BACKENDS.join(', ')}`);
  const resolve = (f?: string) => (f === undefined ? undefined : path.resolve(io.cwd, f));
  const model = a.input ? loadFile(resolve(a.input)!) : demoModel();
  const text = a.text ? readText(resolve(a.text)!) : mobyDick();
  const tok = await getTokenizer(a.tokenizer);
  const jsonFile = resolve(a.json);
  if (jsonFile) fs.writeFileSync(jsonFile, '');
  const bar = a.progress && process.stderr.isTTY
    ? new cliProgress.SingleBar({
      format: 'step {value}/{total} |{bar}| loss {loss} | {tps} tok/s | peak {rss} MiB | ETA {eta_formatted}',
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    : undefined;
  const records: StepRecord[] = await runTraining(model, text, tok, { ...a, checkpoint: resolve(a.checkpoint), resume: resolve(a.resume), saveWeights: resolve(a.saveWeights), saveModel: resolve(a.saveModel) }, {
    onStart({ parameters, prepared, startStep }) {
      const fused = prepared.report?.passes.reduce((s, p) => s + Object.values(p.counts).reduce((x, y) => x + y, 0), 0) ?? 0;
      io.stdout(`training ${a.input ?? 'built-in tiny Qwen2'}: ${(parameters / 1e6).toFixed(2)}M parameters, ${a.fuse ? `fused (${fused} rewrites)` : 'unfused'}, batch ${a.batch}×${a.seq}, ${a.steps} steps, tokenizer ${tok.name}, backend ${a.backend}${a.kernels !== undefined ? ` (kernels: ${a.kernels})` : ''}\n`);
      for (const line of describeParameters(prepared.parameterReport)) io.stdout(`${line}\n`);
      bar?.start(a.steps, startStep, { loss: '-', tps: '-', rss: '-' });
    },
    onStep(r) {
      if (jsonFile) fs.appendFileSync(jsonFile, `${JSON.stringify(r)}\n`);
      if (bar) bar.update(r.step, { loss: r.loss.toFixed(4), tps: r.tokensPerSecond.toFixed(0), rss: r.peakRssMiB.toFixed(0) });
      else io.stdout(`step ${r.step} loss ${r.loss.toFixed(4)}${r.valLoss !== undefined ? ` val ${r.valLoss.toFixed(4)}` : ''} lr ${r.lr.toExponential(2)} ${r.tokensPerSecond.toFixed(0)} tok/s peak ${r.peakRssMiB.toFixed(0)} MiB${r.peakGpuMiB !== undefined ? `, GPU ${r.peakGpuMiB.toFixed(1)} MiB` : ''}\n`);
    },
  });
  bar?.stop();
  const last = records[records.length - 1];
  if (last) io.stdout(`done: loss ${records[0].loss.toFixed(4)} → ${last.loss.toFixed(4)}${last.valLoss !== undefined ? `, validation ${last.valLoss.toFixed(4)}` : ''}\n`);
  const plot = resolve(a.plot);
  if (a.saveWeights) io.stdout(`weights: ${resolve(a.saveWeights)}\n`);
  if (a.saveModel) io.stdout(`model: ${resolve(a.saveModel)}\n`);
  if (plot) {
    fs.writeFileSync(plot, await lossChartSvg([{ name: a.fuse ? 'fused' : 'unfused', points: records }]));
    io.stdout(`loss curve: ${plot}\n`);
  }
}
