/**
 * `ortfuse optimize [in.onnx] [-o out.onnx]`: load, validate, run the default pipeline, check,
 * save atomically (so `-o` may name the input), and report per pass. With `--train` the output is
 * the training-step graph (fused unless `--no-fuse`) with the fused ops' bodies attached. Without an input (or with
 * --demo) it optimizes the built-in demo model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { optimize } from '../index.js';
import { runPipeline, stepPipeline } from '../pipeline.js';
import { buildTrainingGraph } from '../autodiff/index.js';
import { mlpInOps } from '../runtime/memory-budget.js';
import { adoptExport } from '../runtime/session.js';
import { nanGuardPass } from '../../passes/nan-guard.js';
import { check } from '../ir/checker.js';
import { ensureFunctions, FUSED_OPS } from '../../custom-ops/index.js';
import { lowerSoftmaxCrossEntropyPass } from '../../passes/lower-softmax-cross-entropy.js';
import { newContext } from '../rewrite/pass.js';
import { loadFile, saveFile } from '../onnx/io.js';
import { assertWritable } from './writable.js';
import type { CliCommand, CliIO } from './command.js';
import { demoModel } from '../training/demo.js';
import { version } from './program.js';
import { formatReport, type OptimizeRunReport } from './report.js';

export interface OptimizeArgs {
  /** Input file; undefined = the demo model. */
  input?: string;
  output?: string;
  /** Report as JSON to this file, or '-' for stdout. */
  json?: string;
  explain: boolean;
  verbose: boolean;
  check: boolean;
  /** Portable bodies of fused ops for this target. */
  target: 'cpu' | 'webgpu';
  /** Drop a logits output beside a fused loss (training use). */
  dropLogits: boolean;
  /** Write the training-step graph (autodiff after the passes). */
  train: boolean;
  /** Run the fusion pipeline (false: --no-fuse, with --train only). */
  fuse: boolean;
  /** Also fuse each whole SwiGLU MLP into one op (--fuse-mlp). */
  fuseMlp: boolean;
  /** Also fuse each layer's causal attention into one op (--fuse-attention). */
  fuseAttention: boolean;
  /** Also fuse each remaining projection by a parameter into one Linear op (--fuse-linear). */
  fuseLinear: boolean;
}

/** `model.onnx` -> `model.opt.onnx`. */
export function defaultOutput(input: string): string {
  return input.endsWith('.onnx') ? `${input.slice(0, -5)}.opt.onnx` : `${input}.opt.onnx`;
}

export const optimizeCommand: CliCommand<OptimizeArgs> = {
  name: 'optimize',
  configure(cmd: Command) {
    cmd
      .description('rewrite a model with the default pipeline (cleanup, fusions) and save it')
      .argument('[input]', 'ONNX model file (omit it, or pass --demo, to optimize the built-in demo model)')
      .option('-o, --output <file>', 'output model (default: <input>.opt.onnx; external data go to <output>.data)')
      .option('--demo', 'optimize the built-in demo model (a small Qwen2-shaped training graph)')
      .option('--json <file>', "write the report as JSON to <file> ('-' for stdout)")
      .option('--explain', 'for every rule that matched nothing, show its best partial match and why it failed')
      .option('--no-check', 'skip the model checker on the input and the result')
      .option('--target <target>', "fused ops' portable bodies for: cpu (Loop over row chunks) or webgpu (no Loop)", 'cpu')
      .option('--drop-logits', 'drop a logits output that only sits beside the fused loss (for training; kept by default)')
      .option('--train', "write the training-step graph: (parameters, input_ids, labels) -> (loss, grad.<param>), parameters as inputs defaulting to the model's weights")
      .option('--no-fuse', 'with --train: build the step graph from the model as it is (no passes)')
      .option('--fuse-mlp', 'also fuse each whole SwiGLU MLP (gate, up, SwiGLU, down) into one SwiGLUMLP op (off by default until measured)')
      .option('--fuse-attention', "also fuse each layer's causal attention (scores, mask, softmax, probs·v, the GQA repeat) into one CausalAttention op (off by default until measured)")
      .option('--fuse-linear', "also fuse each remaining projection by a parameter (the attention's q, k, v with bias, o) into one Linear op (off by default until measured)");
  },
  parse(positionals, opts) {
    const input = positionals[0] as string | undefined;
    if (input !== undefined && opts.demo) fail('usage', '--demo takes no input file');
    const target = (opts.target ?? 'cpu') as string;
    if (target !== 'cpu' && target !== 'webgpu') fail('usage', `--target must be cpu or webgpu, got '${target}'`);
    if (opts.fuse === false && opts.train !== true) fail('usage', '--no-fuse only applies with --train');
    if (opts.fuse === false && opts.fuseMlp === true) fail('usage', '--fuse-mlp and --no-fuse contradict each other');
    if (opts.fuse === false && opts.fuseAttention === true) fail('usage', '--fuse-attention and --no-fuse contradict each other');
    if (opts.fuse === false && opts.fuseLinear === true) fail('usage', '--fuse-linear and --no-fuse contradict each other');
    return {
      input,
      output: opts.output as string | undefined,
      json: opts.json as string | undefined,
      explain: opts.explain === true,
      verbose: opts.verbose === true,
      check: opts.check !== false,
      target,
      dropLogits: opts.dropLogits === true,
      train: opts.train === true,
      fuse: opts.fuse !== false,
      fuseMlp: opts.fuseMlp === true,
      fuseAttention: opts.fuseAttention === true,
      fuseLinear: opts.fuseLinear === true,
    };
  },
  async run(args, io) {
    await runOptimize(args, io);
  },
};

async function runOptimize(args: OptimizeArgs, io: CliIO): Promise<void> {
  const t0 = performance.now();
  const input = args.input === undefined ? undefined : path.resolve(io.cwd, args.input);
  const output = args.output !== undefined ? path.resolve(io.cwd, args.output) : input && defaultOutput(input);
  const jsonFile = args.json !== undefined && args.json !== '-' ? path.resolve(io.cwd, args.json) : undefined;
  if (output) assertWritable(output, 'output');
  if (jsonFile) assertWritable(jsonFile, 'JSON report');
  let model: Model;
  let t = performance.now();
  if (input) model = loadFile(input);
  else model = demoModel();
  const loadMs = performance.now() - t;
  // --train: every parameter of a torch export as its own initializer under its torch name (src/params).
  const discovery = args.train ? adoptExport(model) : undefined;
  const { report } = optimize(model, {
    explain: args.explain, check: args.check, source: input ?? 'demo model', options: { dropLogits: args.dropLogits },
    // --train: bodies are attached to the step graph (autodiff adds ops), the passes run as for training
    target: args.train ? null : args.target, training: args.train, passes: args.train && !args.fuse ? [] : undefined,
    fuseMlp: args.fuseMlp,
    fuseAttention: args.fuseAttention,
    fuseLinear: args.fuseLinear,
  });
  if (args.train) {
    // The webgpu target's loss must run on the GPU (SoftmaxCrossEntropyLoss has no WebGPU kernel).
    if (args.target === 'webgpu') for (const pass of [lowerSoftmaxCrossEntropyPass, nanGuardPass]) pass.run(model, newContext());
    const names = new Set(discovery!.parameters.map((p) => p.name));
    // The fused MLP's backward form as `train` picks it at fp32 without a budget (memory-budget.ts mlpInOps).
    const inOps = mlpInOps(undefined, false, args.target ?? 'cpu') === 'all';
    model = buildTrainingGraph(model, { ops: FUSED_OPS, parameterDefaults: true, trainable: (name) => names.has(name), recompute: { inOps } });
    report.passes.push(...runPipeline(model, stepPipeline()).passes);
    ensureFunctions(model, args.target);
    if (args.check) check(model, 'training graph');
    report.nodesAfter = model.graph.nodes.length;
  }
  t = performance.now();
  const saved = output ? saveFile(model, output, { location: `${path.basename(output)}.data` }) : undefined;
  const saveMs = performance.now() - t;
  const full: OptimizeRunReport = {
    ortfuse: version(),
    input: input ?? '<demo>',
    output: saved?.model ?? null,
    outputData: saved?.data ?? null,
    ...report,
    ms: { load: loadMs, save: saveMs, total: performance.now() - t0 },
  };
  const json = `${JSON.stringify(full, null, 2)}\n`;
  if (jsonFile) fs.writeFileSync(jsonFile, json);
  if (args.json === '-') io.stdout(json);
  else io.stdout(formatReport(full, args.verbose));
}
