/**
 * Where a training run writes its checkpoints: `--checkpoint FILE` always holds the latest state
 * (written atomically every `--save-every` steps, at the end, and when the run stops early); with
 * `--keep-last K` each periodic save is also kept as `<stem>.step-<NNNNNN><ext>` (e.g.
 * ck.step-000100.bin), and of those this run wrote only the newest K stay.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.js';
import { saveCheckpoint, type TrainState } from './checkpoint.js';

/** `ck.bin` at step 100 → `ck.step-000100.bin` (no extension: `ck.step-000100`). */
export function stepFile(file: string, step: number): string {
  const ext = path.extname(file);
  const stem = ext ? file.slice(0, -ext.length) : file;
  return `${stem}.step-${String(step).padStart(6, '0')}${ext}`;
}

export class CheckpointFiles {
  private kept: string[] = [];

  constructor(readonly file: string, readonly keepLast = 0) {}

  /** Write `s` to the file; `periodic` saves are also kept as step files (rotated, see the header). */
  save(s: TrainState, periodic = false): void {
    if (!periodic || this.keepLast <= 0) return saveCheckpoint(this.file, s);
    const kept = stepFile(this.file, s.step);
    saveCheckpoint(kept, s);
    // The latest file is the same bytes: a hard link renamed over it (atomic), a copy where links fail.
    const tmp = `${this.file}.tmp-${process.pid}`;
    try {
      fs.rmSync(tmp, { force: true });
      try {
        fs.linkSync(kept, tmp);
      } catch {
        fs.copyFileSync(kept, tmp);
      }
      fs.renameSync(tmp, this.file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      fail('io', `cannot write checkpoint ${this.file}: ${(e as Error).message}`, e);
    }
    this.kept = this.kept.filter((f) => f !== kept);
    this.kept.push(kept);
    while (this.kept.length > this.keepLast) fs.rmSync(this.kept.shift()!, { force: true });
  }
}
