import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint.js';
import { CheckpointFiles, stepFile } from './checkpoint-files.js';

const state = (step: number) => ({ step, meta: {}, params: new Map([['w', { value: Float32Array.from([step]), m: new Float32Array(1), v: new Float32Array(1) }]]) });

describe('checkpoint files', () => {
  it('names step files beside the checkpoint', () => {
    expect(stepFile('/a/ck.bin', 100)).toBe('/a/ck.step-000100.bin');
    expect(stepFile('/a/ck', 7)).toBe('/a/ck.step-000007');
    expect(stepFile('/a.b/run.ckpt', 1234567)).toBe('/a.b/run.step-1234567.ckpt');
  });

  it('--keep-last 2: the file holds the latest, the newest two periodic saves stay, other files are left alone', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckfiles-'));
    const file = path.join(dir, 'ck.bin');
    fs.writeFileSync(path.join(dir, 'ck.step-000001.bin'), 'from another run');
    const f = new CheckpointFiles(file, 2);
    for (const s of [5, 10, 15]) f.save(state(s), true);
    expect(fs.readdirSync(dir).sort()).toEqual(['ck.bin', 'ck.step-000001.bin', 'ck.step-000010.bin', 'ck.step-000015.bin']);
    expect(loadCheckpoint(file).step).toBe(15);
    expect(loadCheckpoint(path.join(dir, 'ck.step-000010.bin')).step).toBe(10);
    f.save(state(17)); // final save: only the file
    expect(loadCheckpoint(file).step).toBe(17);
    expect(loadCheckpoint(path.join(dir, 'ck.step-000015.bin')).step).toBe(15);
    expect(fs.readFileSync(path.join(dir, 'ck.step-000001.bin'), 'utf8')).toBe('from another run');
    const plain = new CheckpointFiles(path.join(dir, 'p.bin'));
    plain.save(state(3), true);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('p.'))).toEqual(['p.bin']);
  });
});
