/**
 * `ortfuse train` on bad input (in-process, real files in a temp dir, the built-in tiny Qwen2):
 * every case of issue 10 ends before the first step in one line `ortfuse: error: ...` naming the
 * problem, the documented exit code of its kind, nothing on stdout, and every file in the
 * directory byte for byte as before (including an existing --json file).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { EXIT_CODES } from '../src/errors.js';
import { GraphBuilder, Tensor } from '../src/ir/index.js';
import { tensorType } from '../src/ir/types.js';
import { saveFile } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';


let dir: string;
const SMALL = ['--steps', '5', '--batch', '2', '--seq', '32', '--no-progress'];

/** name → sha256 of every file in the temp dir. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    out[f] = fs.statSync(p).isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : 'dir';
  }
  return out;
}

async function expectRefused(argv: string[], code: keyof typeof EXIT_CODES, pattern: RegExp) {
  const before = snapshot();
  const r = await cli(dir, 'train', ...argv);
  expect(r.stderr).toMatch(/^ortfuse: error: [^\n]+\n$/);
  expect(r.stderr).toMatch(pattern);
  expect(r.stdout).toBe(''); // no header: refused before the run started
  expect(r.code).toBe(EXIT_CODES[code]);
  expect(snapshot()).toEqual(before);
  return r;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-train-bad-'));
  fs.writeFileSync(path.join(dir, 'keep.jsonl'), '{"step":1,"loss":1}\n');
  fs.writeFileSync(path.join(dir, 'keep.svg'), '<svg/>');
  // Checkpoints at step 10 and 20 of a 20-step run (SMALL's settings but --steps 20).
  const r = await cli(dir, 'train', '--steps', '20', '--batch', '2', '--seq', '32', '--no-progress', '--checkpoint', 'ck.bin', '--save-every', '10', '--keep-last', '1');
  expect(r.code).toBe(0);
  fs.renameSync(path.join(dir, 'ck.step-000010.bin'), path.join(dir, 'ck10.bin'));
  fs.renameSync(path.join(dir, 'ck.bin'), path.join(dir, 'ck20.bin'));
}, 60_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ortfuse train refuses bad input before the first step', () => {
  it('--checkpoint in a missing directory', async () => {
    await expectRefused([...SMALL, '--checkpoint', '/nonexistent/ck.bin'], 'io', /--checkpoint \/nonexistent\/ck\.bin: directory \/nonexistent does not exist/);
  });

  it('--plot in a missing directory', async () => {
    await expectRefused([...SMALL, '--plot', '/nonexistent/x.svg'], 'io', /--plot \/nonexistent\/x\.svg: directory \/nonexistent does not exist/);
  });

  it('--json in a missing directory, and --json naming a directory', async () => {
    await expectRefused([...SMALL, '--json', '/nonexistent/x.jsonl'], 'io', /--json \/nonexistent\/x\.jsonl: directory \/nonexistent does not exist/);
    fs.mkdirSync(path.join(dir, 'adir'), { recursive: true });
    await expectRefused([...SMALL, '--json', 'adir'], 'io', /--json .*adir: is a directory/);
  });

  it('an output naming an input: --json is the --text file', async () => {
    fs.writeFileSync(path.join(dir, 'corpus.txt'), 'Call me Ishmael. '.repeat(200));
    await expectRefused([...SMALL, '--text', 'corpus.txt', '--json', 'corpus.txt'], 'usage', /--json .*corpus\.txt is also the --text input/);
  });

  it('--json keep.jsonl of a run that fails before step 1 leaves the file as it was', async () => {
    // Refused by the memory check, after the graph was prepared: the latest a run can fail before step 1.
    await expectRefused(['--steps', '5', '--batch', '100000', '--seq', '512', '--json', 'keep.jsonl', '--plot', 'keep.svg'], 'resources', /--batch 100000/);
    expect(fs.readFileSync(path.join(dir, 'keep.jsonl'), 'utf8')).toBe('{"step":1,"loss":1}\n');
  });

  it('--batch 100000: the memory estimate refuses it and names the largest batch that fits', async () => {
    // --seq 512: hundreds of GiB, so the case holds on any test machine (at the default --seq 64 the estimate is 56 GiB).
    await expectRefused(['--steps', '5', '--batch', '100000', '--seq', '512'], 'resources', /--batch 100000 --seq 512: the step needs about [\d.]+ GiB \(an estimate[^)]*\), more than this machine's [\d.]+ GiB; the largest batch shape that fits is --batch \d+ --seq 512$/m);
  });

  it('--seq 100000: refused the same way, with the longest sequence that fits', async () => {
    await expectRefused(['--steps', '5', '--batch', '2', '--seq', '100000'], 'resources', /--batch 2 --seq 100000: the step needs about [\d.]+ GiB .* the largest batch shape that fits is --batch 1 --seq \d+$/m);
  });

  it('--seq longer than the positions the model records (a RoPE table; a static export shape)', async () => {
    const rope = buildQwen2(TINY, { seed: 0 });
    new GraphBuilder(rope.graph).initializer('model.rotary_emb.cos_cached', Tensor.from(DataType.FLOAT, [16, 8], new Float32Array(128)));
    saveFile(rope, path.join(dir, 'rope16.onnx'));
    await expectRefused(['rope16.onnx', '--tokenizer', 'bytes', ...SMALL], 'usage', /--seq 32 is longer than the model's 16 positions \(RoPE table 'model\.rotary_emb\.cos_cached'\)/);
    const fixed = buildQwen2(TINY, { seed: 0 });
    for (const v of fixed.graph.inputs) v.type = tensorType(DataType.INT64, [2, 16]);
    saveFile(fixed, path.join(dir, 'static.onnx'));
    await expectRefused(['static.onnx', '--tokenizer', 'bytes', ...SMALL], 'usage', /static input shape \[2, 16\] \(input_ids\): run it with --batch 2 --seq 16/);
  });

  it('--lr -1 and other options out of range', async () => {
    await expectRefused([...SMALL, '--lr', '-1'], 'usage', /--lr must be a finite number > 0 \(got -1\)/);
    await expectRefused([...SMALL, '--lr', '0'], 'usage', /--lr must be a finite number > 0/);
    await expectRefused([...SMALL, '--batch', '0'], 'usage', /--batch must be an integer >= 1 \(got 0\)/);
    await expectRefused([...SMALL, '--seq', '1'], 'usage', /--seq must be an integer >= 2/);
    await expectRefused([...SMALL, '--warmup', '-2'], 'usage', /--warmup must be an integer >= 0/);
    await expectRefused([...SMALL, '--weight-decay', '-0.1'], 'usage', /--weight-decay must be a finite number >= 0/);
    await expectRefused([...SMALL, '--clip', '-1'], 'usage', /--clip must be a finite number >= 0/);
    await expectRefused([...SMALL, '--grad-accum', '0'], 'usage', /--grad-accum must be an integer >= 1/);
    await expectRefused([...SMALL, '--schedule', 'step'], 'usage', /--schedule step: expected one of cosine, linear, constant/);
    await expectRefused([...SMALL, '--max-time', 'soon'], 'usage', /--max-time soon: expected a duration/);
    await expectRefused([...SMALL, '--save-every', '2'], 'usage', /--save-every and --keep-last need --checkpoint/);
  });

  it('--resume of a step-10 checkpoint with --steps 5', async () => {
    await expectRefused(['--steps', '5', '--batch', '2', '--seq', '32', '--resume', 'ck10.bin'], 'usage', /--resume .*ck10\.bin: the checkpoint is at step 10, so --steps 5 leaves nothing to train/);
    await expectRefused(['--steps', '20', '--batch', '2', '--seq', '32', '--resume', 'ck20.bin'], 'usage', /at step 20, so --steps 20 leaves nothing/);
  });

  it('--resume with another batch shape, seed or optimizer setting', async () => {
    const base = ['--steps', '20', '--seq', '32', '--resume', 'ck10.bin'];
    await expectRefused([...base, '--batch', '4'], 'usage', /written with --batch 2, this run has --batch 4 \(resume with the same settings\)/);
    await expectRefused([...base, '--batch', '2', '--lr', '2e-3', '--seed', '1'], 'usage', /written with --seed 0 --lr 0\.001, this run has --seed 1 --lr 0\.002/);
    await expectRefused([...base, '--batch', '2', '--schedule', 'linear', '--clip', '0'], 'usage', /written with --schedule cosine --clip 1, this run has --schedule linear --clip 0/);
  });

  it('--resume of another model (parameter shapes differ)', async () => {
    saveFile(buildQwen2({ ...TINY, intermediate_size: 96 }, { seed: 0 }), path.join(dir, 'other.onnx'));
    await expectRefused(['other.onnx', '--tokenizer', 'bytes', '--steps', '20', '--batch', '2', '--seq', '32', '--resume', 'ck10.bin'], 'usage', /the checkpoint is of another model \(parameter '[^']+' is \[\d+,\d+\] there, \[\d+,\d+\] here\)/);
  });

  it('the output of optimize --train (already a training-step graph)', async () => {
    expect((await cli(dir, 'optimize', '--demo', '--train', '-o', 'step.onnx')).code).toBe(0);
    await expectRefused(['step.onnx', ...SMALL], 'usage', /the model is already a training-step graph \(\d+ 'grad\.\*' outputs, as `ortfuse optimize --train` writes\): train the exported model it was made from/);
  });

  it('a binary --text', async () => {
    const bin = Buffer.alloc(4096);
    for (let i = 0; i < bin.length; i++) bin[i] = (i * 7919) % 256;
    fs.writeFileSync(path.join(dir, 'weights.bin'), bin);
    await expectRefused([...SMALL, '--text', 'weights.bin'], 'usage', /--text .*weights\.bin: not a text file \(NUL byte at offset 0/);
    fs.writeFileSync(path.join(dir, 'latin1.txt'), Buffer.from(Array.from({ length: 2000 }, (_, i) => (i % 3 ? 0xe9 : 0x41))));
    await expectRefused([...SMALL, '--eval-text', 'latin1.txt'], 'usage', /--eval-text .*latin1\.txt: not UTF-8 text \(\d+ of \d+ characters undecodable\)/);
  });
});
