import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';

describe('checkpoints', () => {
  it('round-trips the exact float32 state and refuses broken files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-'));
    const file = path.join(dir, 'a.ckpt');
    const value = Float32Array.from([1.5, -2.25, Math.fround(0.1), NaN]);
    const params = new Map([['w', { value, m: value.map((x) => x / 3), v: value.map((x) => x * x), noDecay: true }]]);
    saveCheckpoint(file, { step: 7, params, meta: { seed: 3 } });
    const back = loadCheckpoint(file);
    expect(back.step).toBe(7);
    expect(back.meta).toEqual({ seed: 3 });
    const w = back.params.get('w')!;
    expect(Buffer.from(w.value.buffer)).toEqual(Buffer.from(value.buffer));
    expect(Buffer.from(w.m.buffer)).toEqual(Buffer.from(params.get('w')!.m.buffer));
    expect(w.noDecay).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['a.ckpt']);
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 5));
    expect(() => loadCheckpoint(file)).toThrow(/truncated/);
    fs.writeFileSync(file, 'hello world, not a checkpoint');
    expect(() => loadCheckpoint(file)).toThrow(/broken header|not an ortfuse checkpoint/);
    expect(() => loadCheckpoint(path.join(dir, 'missing'))).toThrow(/no such file/);
  });
});
