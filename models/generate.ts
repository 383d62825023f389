/**
 * Write a Qwen2 training graph with seeded random weights in external data:
 *   npx tsx models/generate.ts --config 0.5b --out models/generated/qwen2-0.5b.onnx [--seed N] [--loss nll]
 * `--config` is a preset (tiny, 0.5b) or a Qwen2Config JSON file. Weights go to `<out>.data`,
 * generated and written tensor by tensor.
 */
import { saveFile } from '../src/onnx/io.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXIT_CODES, fail, OrtfuseError } from '../src/errors.js';
import { resolveConfig, type Qwen2Config } from './config.js';
import { buildQwen2 } from './qwen2.js';

export interface GenerateResult {
  model: string;
  data: string;
  dataBytes: number;
  nodes: number;
  ms: number;
}

/** Build `config` with random weights (seed) and write it to `out` + `out.data`. */
export function generate(config: Qwen2Config, out: string, opts: { seed?: number; loss?: 'sce' | 'nll' } = {}): GenerateResult {
  const t0 = performance.now();
  const dir = path.dirname(path.resolve(out));
  fs.mkdirSync(dir, { recursive: true });
  const dataName = `${path.basename(out)}.data`;
  const model = buildQwen2(config, { seed: opts.seed ?? 0, loss: opts.loss, external: { dir, file: dataName } });
  saveFile(model, out, { referenceInPlace: true, externalData: false });
  const data = path.join(dir, dataName);
  return { model: path.resolve(out), data, dataBytes: fs.statSync(data).size, nodes: model.graph.nodes.length, ms: performance.now() - t0 };
}

function parseArgs(argv: string[]): { config: string; out: string; seed: number; loss: 'sce' | 'nll' } {
  const args: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log('usage: generate.ts --config <tiny|0.5b|config.json> --out <model.onnx> [--seed N] [--loss sce|nll]');
      process.exit(0);
    }
    if (!a.startsWith('--') || i + 1 >= argv.length) fail('usage', `unexpected argument '${a}' (see --help)`);
    args[a.slice(2)] = argv[++i];
  }
  for (const k of Object.keys(args)) if (!['config', 'out', 'seed', 'loss'].includes(k)) fail('usage', `unknown option --${k}`);
  if (!args.config) fail('usage', 'missing --config');
  if (!args.out) fail('usage', 'missing --out');
  const seed = Number(args.seed ?? 0);
  if (!Number.isInteger(seed)) fail('usage', `--seed must be an integer, got '${args.seed}'`);
  const loss = (args.loss ?? 'sce') as 'sce' | 'nll';
  if (loss !== 'sce' && loss !== 'nll') fail('usage', `--loss must be sce or nll, got '${args.loss}'`);
  return { config: args.config, out: args.out, seed, loss };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const a = parseArgs(process.argv.slice(2));
    const r = generate(resolveConfig(a.config), a.out, { seed: a.seed, loss: a.loss });
    console.log(`wrote ${r.model} (${r.nodes} nodes) and ${r.data} (${(r.dataBytes / 2 ** 30).toFixed(2)} GiB) in ${(r.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    if (!(e instanceof OrtfuseError)) throw e;
    console.error(`error: ${e.message}`);
    process.exit(EXIT_CODES[e.code]);
  }
}
