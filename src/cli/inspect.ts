/** `ortfuse inspect in.onnx [--json]`: ops, parameters, opsets, inputs and outputs of a model. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { loadFile } from '../onnx/io.js';
import type { CliCommand } from './command.js';
import { formatSummary, summarize } from './summary.js';

export interface InspectArgs {
  input: string;
  json: boolean;
}

export const inspectCommand: CliCommand<InspectArgs> = {
  name: 'inspect',
  configure(cmd: Command) {
    cmd
      .description('show op histogram, parameters, opsets, inputs and outputs of a model')
      .argument('<input>', 'ONNX model file')
      .option('--json', 'print the summary as JSON');
  },
  parse(positionals, opts) {
    return { input: String(positionals[0]), json: opts.json === true };
  },
  run(args, io) {
    const file = path.resolve(io.cwd, args.input);
    const s = summarize(loadFile(file));
    if (args.json) io.stdout(`${JSON.stringify({ file, ...s }, null, 2)}\n`);
    else io.stdout(formatSummary(s, args.input));
  },
};
