/**
 * `ortfuse train` as a process, stopped early: Ctrl-C typed into a pseudo-terminal (script(1) from
 * util-linux) finishes the step, writes a valid checkpoint, restores the terminal (the cursor-show
 * escape after the hide) and prints the command that resumes; that command, run as printed,
 * continues to losses equal bit for bit to an uninterrupted run's (--json records). SIGTERM without
 * --checkpoint saves to ortfuse-interrupted.ckpt; --max-time stops with a checkpoint and exit 0;
 * a NaN loss stops with exit 8 naming the step, keeping the state before it.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, SIGNAL_EXIT_CODES } from '../src/errors.js';
import { loadCheckpoint } from '../src/runtime/checkpoint.js';
import type { StepRecord } from '../src/runtime/train.js';

const MAIN = path.resolve('src/cli/main.ts');
const TSX = pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href;
const NODE = [process.execPath, '--import', TSX, MAIN];
const STEPS = 600;
const RUN = ['train', '--steps', String(STEPS), '--batch', '2', '--seq', '32', '--eval-every', '100'];

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-interrupt-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const readJsonl = (f: string): StepRecord[] => fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const sameStep = (r: StepRecord) => ({ step: r.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, valLoss: r.valLoss });
const quoteArg = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Run `args` and send `signal` (a byte typed into the pty, or a kill) once the output shows step >= `after`. */
function runUntil(args: string[], opts: { pty: boolean; after: number; signal: NodeJS.Signals }): Promise<{ code: number | null; out: string }> {
  const child = opts.pty
    ? spawn('script', ['-qfec', [...NODE, ...args].map(quoteArg).join(' '), '/dev/null'], { cwd: dir, env: { ...process.env, TERM: 'xterm' } })
    : spawn(NODE[0], [...NODE.slice(1), ...args], { cwd: dir });
  let out = '';
  let sent = false;
  const watch = (d: Buffer) => {
    out += d.toString();
    const steps = [...out.matchAll(/step (\d+)/g)].map((m) => Number(m[1]));
    if (!sent && steps.length && Math.max(...steps) >= opts.after) {
      sent = true;
      if (opts.pty) child.stdin!.write('\x03'); // Ctrl-C at the terminal: SIGINT to its foreground job
      else child.kill(opts.signal);
    }
  };
  child.stdout!.on('data', watch);
  child.stderr!.on('data', watch);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

describe('ortfuse train stopped early', () => {
  it('Ctrl-C in a terminal: checkpoint, terminal restored, the printed resume command continues bit-identically', async () => {
    const full = spawnSync(NODE[0], [...NODE.slice(1), ...RUN, '--json', 'full.jsonl'], { cwd: dir, encoding: 'utf8' });
    expect(full.status, full.stderr).toBe(0);
    const want = readJsonl('full.jsonl');
    expect(want.length).toBe(STEPS);

    const r = await runUntil([...RUN, '--json', 'part.jsonl', '--checkpoint', 'ck.bin'], { pty: true, after: 20, signal: 'SIGINT' });
    expect(r.code, r.out).toBe(SIGNAL_EXIT_CODES.SIGINT);
    // cli-progress hid the cursor and turned line wrap off; both are restored after the last bar update.
    const hide = r.out.indexOf('\x1b[?25l');
    expect(hide).toBeGreaterThanOrEqual(0);
    expect(r.out.lastIndexOf('\x1b[?25h')).toBeGreaterThan(hide);
    expect(r.out.lastIndexOf('\x1b[?7h')).toBeGreaterThan(r.out.lastIndexOf('\x1b[?7l'));
    const m = /ortfuse: interrupted by SIGINT after step (\d+) of 600; checkpoint ck\.bin; resume with: ortfuse (.*?)\r?\n/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    const stoppedAt = Number(m![1]);
    expect(stoppedAt).toBeGreaterThanOrEqual(20);
    expect(stoppedAt).toBeLessThan(STEPS);
    expect(loadCheckpoint(path.join(dir, 'ck.bin')).step).toBe(stoppedAt);
    const part = readJsonl('part.jsonl');
    expect(part.map((x) => x.step)).toEqual(Array.from({ length: stoppedAt }, (_, i) => i + 1));

    // The printed command, as printed: its --json continues the file (records up to the checkpoint kept).
    const args = m![2].split(' ');
    expect(args).toEqual([...RUN, '--json', 'part.jsonl', '--checkpoint', 'ck.bin', '--resume', 'ck.bin']);
    const rest = spawnSync(NODE[0], [...NODE.slice(1), ...args], { cwd: dir, encoding: 'utf8' });
    expect(rest.status, rest.stderr).toBe(0);
    expect(rest.stdout).toMatch(new RegExp(`resuming after step ${stoppedAt}`));
    const whole = readJsonl('part.jsonl');
    expect(whole.slice(0, stoppedAt)).toEqual(part);
    expect(whole.map(sameStep)).toEqual(want.map(sameStep));
    expect(loadCheckpoint(path.join(dir, 'ck.bin')).step).toBe(STEPS);
  }, 120_000);

  it('SIGTERM without --checkpoint saves to ortfuse-interrupted.ckpt (never over an existing file) and exits 143', async () => {
    fs.writeFileSync(path.join(dir, 'ortfuse-interrupted.ckpt'), 'a file of the user');
    const r = await runUntil([...RUN, '--no-progress'], { pty: false, after: 20, signal: 'SIGTERM' });
    expect(r.code, r.out).toBe(SIGNAL_EXIT_CODES.SIGTERM);
    const m = /ortfuse: interrupted by SIGTERM after step (\d+) of 600; checkpoint ortfuse-interrupted-2\.ckpt; resume with: ortfuse train .* --resume ortfuse-interrupted-2\.ckpt\n/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(loadCheckpoint(path.join(dir, 'ortfuse-interrupted-2.ckpt')).step).toBe(Number(m![1]));
    expect(fs.readFileSync(path.join(dir, 'ortfuse-interrupted.ckpt'), 'utf8')).toBe('a file of the user');
  }, 60_000);

  it('--max-time stops after the step that passes it, with a checkpoint, exit 0', () => {
    const r = spawnSync(NODE[0], [...NODE.slice(1), ...RUN, '--no-progress', '--max-time', '1ms', '--checkpoint', 'mt.bin'], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^ortfuse: stopped at --max-time 1ms after step 1 of 600; checkpoint mt\.bin; resume with: ortfuse train .* --resume mt\.bin\n$/);
    expect(loadCheckpoint(path.join(dir, 'mt.bin')).step).toBe(1);
  }, 60_000);

  it('a failure mid-run in a terminal restores it too (cursor shown, line wrap on) before the error line', async () => {
    const r = await runUntil(['train', '--steps', '20', '--batch', '2', '--seq', '32', '--lr', '1e30', '--clip', '0', '--warmup', '0'], { pty: true, after: Infinity, signal: 'SIGINT' });
    expect(r.code, r.out).toBe(EXIT_CODES.diverged);
    const hide = r.out.indexOf('\x1b[?25l');
    expect(hide).toBeGreaterThanOrEqual(0);
    const show = r.out.lastIndexOf('\x1b[?25h');
    expect(show).toBeGreaterThan(hide);
    expect(r.out.lastIndexOf('\x1b[?7h')).toBeGreaterThan(r.out.lastIndexOf('\x1b[?7l'));
    expect(r.out.indexOf('ortfuse: error: step')).toBeGreaterThan(show);
  }, 60_000);

  it('a NaN loss stops the run with exit 8, naming the step, and keeps the state before it', () => {
    const r = spawnSync(NODE[0], [...NODE.slice(1), 'train', '--steps', '20', '--batch', '2', '--seq', '32', '--lr', '1e30', '--clip', '0', '--warmup', '0', '--no-progress', '--checkpoint', 'nan.bin'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(EXIT_CODES.diverged);
    expect(r.stderr).toMatch(/^ortfuse: error: step (\d+): the loss is NaN; the state after step \d+ is saved in .*nan\.bin; try a lower --lr\n$/);
    const step = Number(/step (\d+): the loss/.exec(r.stderr)![1]);
    expect(loadCheckpoint(path.join(dir, 'nan.bin')).step).toBe(step - 1);
  }, 60_000);
});
