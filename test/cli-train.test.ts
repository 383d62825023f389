/**
 * `ortfuse train` happy paths beyond the defaults (in-process, the built-in tiny Qwen2): a model
 * written by `optimize --demo` trains as it is (the tokenizer follows its vocabulary), the
 * schedule options shape the learning rates in the JSON records, --eval-text validates on another
 * text, --grad-accum shows in the header.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import type { StepRecord } from '../src/runtime/train.js';


let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-train-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const SMALL = ['--batch', '2', '--seq', '32', '--no-progress'];
const records = (f: string): StepRecord[] => fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('ortfuse train options', () => {
  it('trains the model `optimize --demo -o` wrote, with the bytes tokenizer its vocabulary of 512 calls for', async () => {
    expect((await cli(dir, 'optimize', '--demo', '-o', 'demo.onnx')).code).toBe(0);
    const r = await cli(dir, 'train', 'demo.onnx', '--steps', '3', ...SMALL);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^training demo\.onnx: .*tokenizer bytes, backend cpu \(onnxruntime-node CPU EP\), fp32, step memory about [\d.]+ GiB \(estimate\)\n/);
  });

  it('--warmup, --schedule and --min-lr-ratio give the learning rates of the records', async () => {
    const lrs = async (...flags: string[]) => {
      const r = await cli(dir, 'train', '--steps', '6', ...SMALL, '--lr', '1e-3', '--warmup', '2', '--json', 'lr.jsonl', ...flags);
      expect(r.code, r.stderr).toBe(0);
      return records('lr.jsonl').map((x) => x.lr);
    };
    expect(await lrs('--schedule', 'constant')).toEqual([5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]);
    const lin = await lrs('--schedule', 'linear', '--min-lr-ratio', '0.5');
    [5e-4, 1e-3, 0.875e-3, 0.75e-3, 0.625e-3, 0.5e-3].forEach((want, i) => expect(lin[i]).toBeCloseTo(want, 12));
    const cos = await lrs();
    expect(cos[5]).toBeCloseTo(1e-4, 12);
    expect(cos[3]).toBeCloseTo(1e-4 + 0.5 * 0.9e-3 * (1 + Math.cos(Math.PI / 2)), 12);
  });

  it('--eval-text validates on another text; --eval-every sets when', async () => {
    fs.writeFileSync(path.join(dir, 'eval.txt'), 'the whale, the whale, the white whale. '.repeat(40));
    const r = await cli(dir, 'train', '--steps', '4', ...SMALL, '--eval-every', '2', '--json', 'ev.jsonl');
    const e = await cli(dir, 'train', '--steps', '4', ...SMALL, '--eval-every', '2', '--json', 'ev2.jsonl', '--eval-text', 'eval.txt');
    expect([r.code, e.code]).toEqual([0, 0]);
    const [a, b] = [records('ev.jsonl'), records('ev2.jsonl')];
    expect(a.map((x) => x.valLoss !== undefined)).toEqual([false, true, false, true]);
    expect(b.map((x) => x.valLoss !== undefined)).toEqual([false, true, false, true]);
    expect(b[3].valLoss).not.toBe(a[3].valLoss);
  });

  it('--grad-accum 2 shows in the header and counts its tokens', async () => {
    const r = await cli(dir, 'train', '--steps', '2', ...SMALL, '--grad-accum', '2', '--json', 'ga.jsonl');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/batch 2×32 × 2 micro-batches, 2 steps/);
    const g = records('ga.jsonl');
    expect(g[0].tokensPerSecond).toBeCloseTo((2 * 2 * 32 * 1000) / g[0].ms, 6);
  });
});
