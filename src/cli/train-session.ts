/**
 * The process side of `ortfuse train`: the progress bar and the terminal state it changes (hidden
 * cursor, line wrap off — restored on every exit path), Ctrl-C / SIGTERM (the first finishes the
 * step and saves a checkpoint, a second quits at once), JSON lines written only once there is a
 * record (a run that fails earlier leaves an existing file as it was; a resumed run continues the
 * file), and the resume command.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import cliProgress from 'cli-progress';
import { SIGNAL_EXIT_CODES } from '../errors.js';
import type { StepRecord } from '../runtime/train.js';

/** The step bar on a TTY; `stop()` restores the cursor and line wrap (idempotent). */
export class ProgressView {
  private bar?: cliProgress.SingleBar;
  private active = false;
  private readonly restoreOnExit = () => this.stop();

  constructor(enabled: boolean) {
    if (enabled)
      this.bar = new cliProgress.SingleBar({
        format: 'step {value}/{total} |{bar}| loss {loss} | {tps} tok/s | peak {rss} MiB{scaling} | ETA {eta_formatted}',
        hideCursor: true,
        gracefulExit: false,
      }, cliProgress.Presets.shades_classic);
  }

  get enabled(): boolean {
    return this.bar !== undefined;
  }

  start(total: number, value: number): void {
    if (!this.bar) return;
    this.bar.start(total, value, { loss: '-', tps: '-', rss: '-', scaling: '' });
    this.active = true;
    process.once('exit', this.restoreOnExit);
  }

  /** Steps skipped by loss scaling so far (mixed precision). */
  private skipped = 0;

  update(r: StepRecord): void {
    if (r.skipped) this.skipped++;
    const scaling = r.lossScale === undefined ? '' : ` | scale ${r.lossScale}${this.skipped ? `, ${this.skipped} skipped` : ''}`;
    this.bar?.update(r.step, { loss: r.loss.toFixed(4), tps: r.tokensPerSecond.toFixed(0), rss: r.peakRssMiB.toFixed(0), scaling });
  }

  stop(): void {
    if (!this.active) return;
    this.active = false;
    process.removeListener('exit', this.restoreOnExit);
    this.bar!.stop();
  }
}

/**
 * SIGINT/SIGTERM while training: the first asks the run to stop after the current step (it then
 * saves a checkpoint); a second one quits at once with 128 + signal, after restoring the terminal.
 */
export class StopSignals {
  private reason?: 'SIGINT' | 'SIGTERM';
  private readonly handler = (sig: NodeJS.Signals) => {
    if (this.reason) {
      this.onForce();
      process.stderr.write(`\nortfuse: ${sig} again: quitting without a checkpoint\n`);
      process.exit(SIGNAL_EXIT_CODES[sig as 'SIGINT' | 'SIGTERM'] ?? 130);
    }
    this.reason = sig as 'SIGINT' | 'SIGTERM';
  };

  constructor(private readonly onForce: () => void) {}

  install(): void {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  dispose(): void {
    process.removeListener('SIGINT', this.handler);
    process.removeListener('SIGTERM', this.handler);
  }

  /** The signal received, if any. */
  get requested(): 'SIGINT' | 'SIGTERM' | undefined {
    return this.reason;
  }
}

/**
 * JSON lines: the file is written only with the first record, not before. A fresh run replaces
 * it; a resumed run (`begin(step)` with the checkpoint's step) keeps the records up to that step
 * and drops later ones (written after the checkpoint by the run that stopped), so the file again
 * holds the whole run, once.
 */
export class JsonLines {
  private started = false;
  private keepUpTo = 0;
  /** Records kept from the run that wrote the checkpoint. */
  previous: StepRecord[] = [];

  constructor(readonly file: string) {}

  begin(resumedAt: number): void {
    this.keepUpTo = resumedAt;
  }

  write(r: StepRecord): void {
    if (!this.started && this.keepUpTo > 0 && fs.existsSync(this.file)) {
      for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
        try {
          const rec = JSON.parse(line) as StepRecord;
          if (typeof rec.step === 'number' && rec.step <= this.keepUpTo) this.previous.push(rec);
        } catch {
          // not a record (an empty or cut line): dropped
        }
      }
    }
    const text = `${[...(this.started ? [] : this.previous), r].map((x) => JSON.stringify(x)).join('\n')}\n`;
    fs.writeFileSync(this.file, text, { flag: this.started ? 'a' : 'w' });
    this.started = true;
  }
}

/** The first of `ortfuse-interrupted.ckpt`, `ortfuse-interrupted-2.ckpt`, ... in `dir` that does not exist. */
export function freeCheckpointName(dir: string): string {
  for (let i = 1; ; i++) {
    const f = path.join(dir, `ortfuse-interrupted${i === 1 ? '' : `-${i}`}.ckpt`);
    if (!fs.existsSync(f)) return f;
  }
}

const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** `ortfuse <argv>` with any --resume replaced by `--resume <checkpoint>`, quoted for a POSIX shell. */
export function resumeCommand(argv: string[], checkpoint: string): string {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') i++;
    else if (!argv[i].startsWith('--resume=')) out.push(argv[i]);
  }
  return ['ortfuse', ...out, '--resume', checkpoint].map(quote).join(' ');
}

/** Parse a duration: 90s, 30m, 2h, 1.5h, 500ms, or a number of seconds. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return ms > 0 ? ms : undefined;
}
