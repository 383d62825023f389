/**
 * What a CLI command is: a name, a parser description (commander), and an action that receives
 * the parsed arguments and the process's streams. Commands are registered in the explicit list
 * of src/cli/commands.ts.
 */
import type { Command } from 'commander';

/** Where a command writes; the bin passes process streams, tests capture them. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Working directory relative paths resolve against (default process.cwd()). */
  cwd: string;
  /** The command line (without node and script), as runCli received it. */
  argv?: string[];
}

/** Options every command understands. */
export interface GlobalOptions {
  verbose?: boolean;
}

export interface CliCommand<Args = any> {
  name: string;
  /** Declare arguments and options on `cmd` (parsing only, no side effects). */
  configure(cmd: Command): void;
  /** Turn commander's positional arguments and options into the action's input. */
  parse(positionals: unknown[], opts: Record<string, unknown>): Args;
  /** Run the command; throw OrtfuseError for user-facing failures. A number returned is the exit code. */
  run(args: Args, io: CliIO): Promise<void | number> | void | number;
}

/** Process streams as CliIO. */
export function processIO(): CliIO {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    cwd: process.cwd(),
  };
}
