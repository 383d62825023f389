/** The CLI's commands, in the order `--help` lists them. Add new commands (e.g. `train`) here. */
import type { CliCommand } from './command.js';
import { inspectCommand } from './inspect.js';
import { optimizeCommand } from './optimize.js';
import { trainCommand } from './train.js';

export const COMMANDS: CliCommand[] = [optimizeCommand, inspectCommand, trainCommand];
