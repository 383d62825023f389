/** `ortfuse inspect in.onnx [--json]`: ops, parameters, opsets, inputs and outputs of a model. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { loadFile } from '../onnx/io.js';
import type { CliCommand } from './command.js';
import type { Model } from '../ir/graph.js';
import { discoverParameters, type ParameterDiscovery } from '../params/discover.js';
import { formatSummary, summarize } from '../ir/summary.js';

export interface InspectArgs {
  input: string;
  json: boolean;
  params: boolean;
}

/** The parameters as training would see them: torch name (tied aliases), shape, where found; then buffers and constants. */
function parameterList(model: Model): { method: string; parameters: { name: string; aliases: string[]; shape: number[]; initializers: string[] }[]; nonParameters: ParameterDiscovery['nonParameters'] } {
  const d = discoverParameters(model);
  return {
    method: d.method,
    parameters: d.parameters.map((p) => ({
      name: p.name,
      aliases: p.aliases,
      shape: p.shape,
      initializers: [...new Set(p.uses.map((u) => (u.transposed ? `${u.value.name} (transposed)` : u.value.name)))],
    })),
    nonParameters: d.nonParameters,
  };
}

function formatParameters(l: ReturnType<typeof parameterList>): string {
  const n = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const total = l.parameters.reduce((s, p) => s + n(p.shape), 0);
  const rows = l.parameters.map((p) => `  ${p.name.padEnd(52)} [${p.shape.join(', ')}]${p.aliases.length ? `  tied: ${p.aliases.join(', ')}` : ''}  ← ${p.initializers.join(', ')}`);
  const other = l.nonParameters.filter((p) => p.size > 1).map((p) => `  ${p.name} (${p.kind}, ${p.size} values)`);
  return `parameters (${l.parameters.length} tensors, ${total} values; ${l.method === 'torch-record' ? "names from the exporter's record" : 'found by graph role'}):\n${rows.join('\n')}\n`
    + (other.length ? `not parameters:\n${other.join('\n')}\n` : '');
}

export const inspectCommand: CliCommand<InspectArgs> = {
  name: 'inspect',
  configure(cmd: Command) {
    cmd
      .description('show op histogram, parameters, opsets, inputs and outputs of a model')
      .argument('<input>', 'ONNX model file')
      .option('--json', 'print the summary as JSON')
      .option('--params', 'list the parameters training would see: torch names (tied aliases), shapes, the initializers they come from; buffers and constants');
  },
  parse(positionals, opts) {
    return { input: String(positionals[0]), json: opts.json === true, params: opts.params === true };
  },
  run(args, io) {
    const file = path.resolve(io.cwd, args.input);
    const model = loadFile(file);
    if (args.params) {
      const l = parameterList(model);
      io.stdout(args.json ? `${JSON.stringify({ file, ...l }, null, 2)}\n` : formatParameters(l));
      return;
    }
    const s = summarize(model);
    if (args.json) io.stdout(`${JSON.stringify({ file, ...s }, null, 2)}\n`);
    else io.stdout(formatSummary(s, args.input));
  },
};
