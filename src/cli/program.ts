/**
 * The command-line front end: builds the commander program from the command list, parses, runs
 * the action, and turns every failure into one line `ortfuse: error: <message>` on stderr and an
 * exit code from EXIT_CODES (1 for unexpected internal errors). Stack traces only with --verbose.
 */
import * as fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT_CODES, OrtfuseError } from '../errors.js';
import { processIO, type CliIO } from './command.js';
import { COMMANDS } from './commands.js';

/** The package version (from the nearest package.json named ortfuse). */
export function version(): string {
  let url = new URL('.', import.meta.url);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('package.json', url), 'utf8'));
      if (pkg.name === 'ortfuse') return String(pkg.version);
    } catch {
      // keep looking upwards
    }
    url = new URL('..', url);
  }
  return '0.0.0';
}

function buildProgram(io: CliIO, exit: { code: number }): Command {
  const out = { writeOut: io.stdout, writeErr: io.stderr, outputError: () => {} };
  const program = new Command('ortfuse')
    .description('Fuse linear+cross-entropy, RMSNorm, SwiGLU and RoPE in ONNX training graphs for stock ONNX Runtime')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput(out);
  for (const c of COMMANDS) {
    const cmd = program.command(c.name);
    c.configure(cmd);
    cmd.option('--verbose', 'more detail; stack traces on errors');
    cmd.action(async (...a: unknown[]) => {
      const self = a[a.length - 1] as Command;
      const code = await c.run(c.parse(a.slice(0, -2), self.opts()), io);
      if (typeof code === 'number') exit.code = code;
    });
  }
  return program;
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();

/** Run the CLI on `argv` (without node and script); returns the exit code. */
export async function runCli(argv: string[], io: CliIO = processIO()): Promise<number> {
  const verbose = argv.includes('--verbose');
  const exit = { code: 0 };
  const program = buildProgram({ argv, ...io }, exit);
  if (argv.length === 0) {
    io.stderr(program.helpInformation());
    return EXIT_CODES.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help') return EXIT_CODES.usage;
      io.stderr(`ortfuse: error: ${oneLine(e.message.replace(/^error: /, ''))} (see 'ortfuse --help')\n`);
      return EXIT_CODES.usage;
    }
    if (e instanceof OrtfuseError) {
      io.stderr(`ortfuse: error: ${oneLine(e.message)}\n`);
      if (verbose && e.stack) io.stderr(`${e.stack}\n`);
      return EXIT_CODES[e.code] ?? 1;
    }
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr(`ortfuse: error: internal error: ${oneLine(msg)}${verbose ? '' : ' (run with --verbose for the stack trace)'}\n`);
    if (verbose && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
    return 1;
  }
}
