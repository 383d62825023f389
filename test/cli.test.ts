/** The CLI's happy paths: optimize (files, external data, -o = input, demo, JSON), inspect, help. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { version } from '../src/cli/program.js';
import { cli } from './cli-helpers.js';
import { createModel, Graph, GraphBuilder, Tensor, checkModel, type Model } from '../src/ir/index.js';
import { loadFile, saveBytes, saveFile } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';


/** x[batch,64] -> MatMul(w: 16 KiB) -> Add(bias) -> Relu -> y, plus a model-local function. */
function fixture(): Model {
  const m = createModel({ opset: 20, opsets: { 'com.test': 1 } });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, ['batch', 64]);
  const w = b.initializer('w', Tensor.from(DataType.FLOAT, [64, 64], Array.from({ length: 4096 }, (_, i) => Math.sin(i))));
  const bias = b.constant(Array.from({ length: 64 }, (_, i) => i / 64 - 0.5), { dtype: DataType.FLOAT, name: 'bias' });
  const h = b.op.Add(b.op.MatMul(x, w), bias);
  b.output(b.op.call('Square', [b.op.Relu(h)], {}, { domain: 'com.test' })[0], 'y');
  const body = new Graph(m);
  const fb = new GraphBuilder(body);
  const a = fb.input('a', DataType.FLOAT);
  fb.output(fb.op.Mul(a, a), 'out');
  m.functions.push({ domain: 'com.test', name: 'Square', attributeNames: [], attributeProtos: [], opsetImports: new Map([['', 20]]), body, extra: {} });
  return m;
}

async function run(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const r = await s.run({ x: new ort.Tensor('float32', x, [x.length / 64, 64]) });
  await s.release();
  return r.y.data as Float32Array;
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ortfuse CLI', () => {
  it('--help and --version', async () => {
    const h = await cli(dir, '--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Usage: ortfuse/);
    expect(h.stdout).toMatch(/optimize \[options\] \[input\]/);
    expect(h.stdout).toMatch(/inspect \[options\] <input>/);
    const oh = await cli(dir, 'optimize', '--help');
    expect(oh.stdout).toMatch(/--json <file>/);
    expect(oh.stdout).toMatch(/--explain/);
    expect(oh.stdout).toMatch(/--no-check/);
    const v = await cli(dir, '--version');
    expect(v.stdout.trim()).toBe(JSON.parse(fs.readFileSync('package.json', 'utf8')).version);
    expect(version()).toBe(v.stdout.trim());
    const none = await cli(dir);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/Usage: ortfuse/);
  });

  it('optimize writes <in>.opt.onnx, a report table and a JSON report; ORT outputs match', async () => {
    fs.writeFileSync(path.join(dir, 'm.onnx'), saveBytes(fixture()));
    const r = await cli(dir, 'optimize', 'm.onnx', '--json', 'report.json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = path.join(dir, 'm.opt.onnx');
    expect(r.stdout).toContain(`-> ${out}`);
    expect(r.stdout).toMatch(/nodes \d+ -> \d+ · checker ok · total [\d.]+ ms/);
    const rep = JSON.parse(fs.readFileSync(path.join(dir, 'report.json'), 'utf8'));
    expect(rep).toMatchObject({ input: path.join(dir, 'm.onnx'), output: out, outputData: null, checked: true, nodesBefore: 4 });
    expect(Array.isArray(rep.passes)).toBe(true);
    expect(Array.isArray(rep.explanations)).toBe(true);
    for (const p of rep.passes) expect(p).toMatchObject({ name: expect.any(String), modified: expect.any(Boolean), counts: expect.any(Object), ms: expect.any(Number) });
    expect(rep.ms.total).toBeGreaterThan(0);
    const optimized = loadFile(out);
    expect(checkModel(optimized)).toEqual([]);
    expect(optimized.functions.map((f) => f.name)).toEqual(['Square']);
    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i));
    const a = await run(fs.readFileSync(path.join(dir, 'm.onnx')), x);
    const b = await run(fs.readFileSync(out), x);
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('--json - prints only JSON; --explain and --verbose are accepted', async () => {
    const r = await cli(dir, 'optimize', 'm.onnx', '-o', 'j.onnx', '--json', '-', '--explain', '--verbose');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.output).toBe(path.join(dir, 'j.onnx'));
    expect(rep.timings).toMatchObject({ validate: expect.any(Number), passes: expect.any(Number), check: expect.any(Number) });
    const t = await cli(dir, 'optimize', 'm.onnx', '-o', 'j.onnx', '--verbose', '--no-check');
    expect(t.stdout).toMatch(/checker skipped/);
    expect(t.stdout).toMatch(/load [\d.]+ ms · validate/);
  });

  it('external data of the input go to <out>.data; -o may name the input', async () => {
    const src = path.join(dir, 'ext.onnx');
    saveFile(fixture(), src, { externalData: true, location: 'weights.bin' });
    const before = fs.readFileSync(path.join(dir, 'weights.bin'));
    const r = await cli(dir, 'optimize', 'ext.onnx', '-o', 'ext-out.onnx');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`(+ ${path.join(dir, 'ext-out.onnx.data')})`);
    expect(fs.statSync(path.join(dir, 'ext-out.onnx.data')).size).toBeGreaterThanOrEqual(16384);
    expect(fs.readFileSync(path.join(dir, 'weights.bin')).equals(before)).toBe(true);
    const x = Float32Array.from({ length: 64 }, (_, i) => i / 10);
    const ref = await run(saveBytes(loadFile(src)), x);
    expect(Array.from(await run(saveBytes(loadFile(path.join(dir, 'ext-out.onnx'))), x))).toEqual(Array.from(ref));
    // In place: the model and its data are replaced by the optimized copy.
    const s = await cli(dir, 'optimize', 'ext-out.onnx', '-o', 'ext-out.onnx');
    expect(s.code).toBe(0);
    expect(Array.from(await run(saveBytes(loadFile(path.join(dir, 'ext-out.onnx'))), x))).toEqual(Array.from(ref));
    expect(fs.readdirSync(dir).filter((f) => f.includes('ortfuse-tmp'))).toEqual([]);
  });

  it('optimize without input (or --demo) runs the built-in Qwen2 model', async () => {
    const empty = fs.mkdtempSync(path.join(dir, 'demo-'));
    const r = await cli(empty, 'optimize');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ortfuse optimize: <demo> -> \(not saved/);
    expect(fs.readdirSync(empty)).toEqual([]);
    const d = await cli(empty, 'optimize', '--demo', '-o', 'demo.onnx');
    expect(d.code).toBe(0);
    const bytes = fs.readFileSync(path.join(empty, 'demo.onnx'));
    const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
    expect(s.inputNames).toEqual(['input_ids', 'labels']);
    const ids = new ort.Tensor('int64', BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 37) % 512)), [2, 8]);
    const loss = (await s.run({ input_ids: ids, labels: ids })).loss.data[0] as number;
    expect(loss).toBeGreaterThan(Math.log(512) - 1);
    expect(loss).toBeLessThan(Math.log(512) + 1);
  });

  it('inspect shows ops with domains, parameters, opsets, IO with symbolic dims, functions', async () => {
    const r = await cli(dir, 'inspect', 'm.onnx');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/IR version 10 · producer ortfuse · opsets: ai\.onnx 20, com\.test 1/);
    expect(r.stdout).toMatch(/x\s+FLOAT\[batch,64\]/);
    expect(r.stdout).toMatch(/parameters: 4,160 in 2 initializers, 16\.25 KiB/);
    expect(r.stdout).toMatch(/\n\s+1 {2}com\.test::Square\n/);
    expect(r.stdout).toMatch(/com\.test\.Square\(a\) -> \(out\) {2}1 nodes/);
    const j = await cli(dir, 'inspect', 'ext.onnx', '--json');
    const s = JSON.parse(j.stdout);
    expect(s.inputs).toEqual([{ name: 'x', type: 'FLOAT[batch,64]', elemType: 'FLOAT', shape: ['batch', 64] }]);
    expect(s.opsets).toEqual({ 'ai.onnx': 20, 'com.test': 1 });
    expect(s.parameters).toMatchObject({ tensors: 2, elements: 4160, bytes: 16640, externalBytes: 16384 });
    expect(s.ops).toContainEqual({ domain: 'com.test', op: 'Square', count: 1 });
    expect(s.nodes).toBe(4);
  });

  it('the bin runs as a process: exit codes and one-line errors', () => {
    const bin = path.resolve('src/cli/main.ts');
    const go = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', bin, ...args], { encoding: 'utf8' });
    expect(fs.readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const ok = go('inspect', path.join(dir, 'm.onnx'));
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/nodes: 4/);
    fs.writeFileSync(path.join(dir, 'bad.onnx'), 'not a model');
    const bad = go('optimize', path.join(dir, 'bad.onnx'));
    expect(bad.status).toBe(4);
    expect(bad.stderr).toMatch(/^ortfuse: error: .*bad\.onnx: not a valid ONNX model[^\n]*\n$/);
    expect(fs.existsSync(path.join(dir, 'bad.opt.onnx'))).toBe(false);
  });
});
