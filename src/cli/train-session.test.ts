import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freeCheckpointName, JsonLines, parseDuration, resumeCommand } from './train-session.js';
import type { StepRecord } from '../runtime/train.js';

const rec = (step: number) => ({ step, loss: 1 / step, lr: 1e-3, gradNorm: 1, ms: 1, tokensPerSecond: 1, peakRssMiB: 1 }) as StepRecord;
const steps = (f: string) => fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);

describe('train session helpers', () => {
  it('JsonLines: nothing written before the first record; a resumed run keeps records up to its checkpoint', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jsonl-'));
    const f = path.join(dir, 'r.jsonl');
    fs.writeFileSync(f, 'old contents\n');
    const fresh = new JsonLines(f);
    fresh.begin(0);
    expect(fs.readFileSync(f, 'utf8')).toBe('old contents\n');
    for (const s of [1, 2, 3, 4, 5]) fresh.write(rec(s));
    expect(steps(f)).toEqual([1, 2, 3, 4, 5]);
    fs.appendFileSync(f, '{"step":6,"lo'); // a line cut by a crash
    const resumed = new JsonLines(f);
    resumed.begin(3); // the checkpoint was at step 3: records 4, 5 and the cut line go
    resumed.write(rec(4));
    resumed.write(rec(5));
    expect(steps(f)).toEqual([1, 2, 3, 4, 5]);
    expect(resumed.previous.map((r) => r.step)).toEqual([1, 2, 3]);
  });

  it('resumeCommand replaces --resume and quotes for the shell; parseDuration; free checkpoint names', () => {
    expect(resumeCommand(['train', '--steps', '9', '--resume', 'a.ckpt', '--text', "it's.txt"], 'b.ckpt')).toBe("ortfuse train --steps 9 --text 'it'\\''s.txt' --resume b.ckpt");
    expect(resumeCommand(['train', '--resume=a', 'm.onnx'], 'ck')).toBe('ortfuse train m.onnx --resume ck');
    expect([parseDuration('90s'), parseDuration('30m'), parseDuration('2h'), parseDuration('1.5h'), parseDuration('500ms'), parseDuration('45')])
      .toEqual([90_000, 1_800_000, 7_200_000, 5_400_000, 500, 45_000]);
    expect([parseDuration('0s'), parseDuration('soon'), parseDuration('-1m')]).toEqual([undefined, undefined, undefined]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckname-'));
    expect(freeCheckpointName(dir)).toBe(path.join(dir, 'ortfuse-interrupted.ckpt'));
    fs.writeFileSync(path.join(dir, 'ortfuse-interrupted.ckpt'), '');
    expect(freeCheckpointName(dir)).toBe(path.join(dir, 'ortfuse-interrupted-2.ckpt'));
  });
});
