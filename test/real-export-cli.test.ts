/**
 * `ortfuse train` on a default-settings torch export (models/fixtures/default): says what it trains,
 * honours --trainable/--freeze, and gives the weights back — safetensors under the torch names
 * (torch layout, the tied embedding once) and the exported ONNX with the trained weights, which
 * onnxruntime-node runs to the same loss as ortfuse's training graph.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCliIn } from './cli-helpers.js';
import { loadFile } from '../src/onnx/io.js';
import { loadSafetensors } from '../src/params/safetensors.js';
import { prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer } from '../src/runtime/trainer.js';

const DIR = new URL('../models/fixtures/default/', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-real-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cli = (...argv: string[]) => runCliIn(tmp, ...argv);

const fx = (stem: string) => JSON.parse(fs.readFileSync(`${DIR}${stem}.json`, 'utf8'));
const TRAIN = ['--steps', '4', '--batch', '2', '--seq', '32', '--tokenizer', 'bytes', '--no-progress'];

describe('ortfuse train on default-settings torch exports', () => {
  it('trains every parameter, saves safetensors under torch names and an ONNX model that ORT runs to the same loss', async () => {
    const stem = 'qwen2-default-tied';
    const r = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--save-weights', 'w.safetensors', '--save-model', 'm.onnx');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trained 0\.11M of 0\.11M float parameters \(26 tensors, names from the exporter's record\)/);
    const info = fx(stem);
    // safetensors: every torch parameter once (the tied lm_head is model.embed_tokens.weight), torch layout
    const st = loadSafetensors(path.join(tmp, 'w.safetensors')).tensors;
    expect(new Map([...st].map(([k, v]) => [k, v.shape]))).toEqual(new Map(Object.entries(info.parameters)));
    // the weights changed from the export's
    const initial = prepareTraining(loadFile(`${DIR}${stem}.onnx`), { fuse: false }).initial;
    expect(st.get('model.layers.1.mlp.down_proj.weight')!.data).not.toEqual(initial.get('model.layers.1.mlp.down_proj.weight'));
    // the saved model: same interface as the export, trained weights = the safetensors
    const saved = loadFile(path.join(tmp, 'm.onnx'));
    for (const [name, t] of st) expect(saved.graph.initializers.find((v) => v.name === name)!.initializer!.toArray(), name).toEqual(t.data);
    const ids = BigInt64Array.from(info.inputs.input_ids.flat().map(BigInt));
    const labels = BigInt64Array.from(info.inputs.labels.flat().map(BigInt));
    const s = await ort.InferenceSession.create(path.join(tmp, 'm.onnx'), { logSeverityLevel: 3 });
    const out = await s.run({ input_ids: new ort.Tensor('int64', ids, [2, 16]), labels: new ort.Tensor('int64', labels, [2, 16]) });
    const ortLoss = Number((out[s.outputNames[0]] as ort.Tensor).data[0]);
    await s.release();
    // ortfuse's own training graph on the saved weights gives the same loss
    const p = prepareTraining(saved, { fuse: true, target: 'cpu' });
    const t = await CpuTrainer.create(p.train, p.initial, { optimizer: { lr: 1 }, schedule: { lr: 1, warmupSteps: 0, totalSteps: 1 } });
    const { loss } = await t.lossAndGrads({ inputIds: ids, labels, batch: 2, seq: 16 });
    await t.release();
    expect(Math.abs(loss - ortLoss)).toBeLessThan(1e-5);
    expect(Math.abs(loss - info.loss)).toBeGreaterThan(1e-4); // trained, not the export's loss
  }, 60_000);

  it('--trainable / --freeze choose by torch name; a run training under half the weights says so', async () => {
    const r = await cli('train', `${DIR}qwen2-default-gqa.onnx`, ...TRAIN, '--steps', '1', '--trainable', 'model.layers.*.mlp.*', '--freeze', 'model.layers.2.*');
    expect(r.code).toBe(0);
    // 2 layers × 3 × 56 × 128 MLP weights of 115,296 float values
    expect(r.stdout).toMatch(/trained 43008 of 0.12M float parameters \(6 tensors.*frozen: model\.embed_tokens\.weight/);
    expect(r.stdout).toMatch(/warning: fewer than half of the model's float values train/);
    const bad = await cli('train', `${DIR}qwen2-default-gqa.onnx`, ...TRAIN, '--trainable', 'model.layer.*');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--trainable 'model.layer.\*' matches no parameter/);
  }, 60_000);

  it('inspect --params lists torch names, shapes, tied aliases and the initializers they come from', async () => {
    const r = await cli('inspect', '--params', `${DIR}qwen2-default-tied.onnx`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/parameters \(26 tensors, 107072 values; names from the exporter's record\)/);
    expect(r.stdout).toMatch(/model\.embed_tokens\.weight\s+\[512, 64\]\s+tied: lm_head\.weight/);
    expect(r.stdout).toMatch(/model\.layers\.0\.self_attn\.v_proj\.bias\s+\[32\]\s+← model\.layers\.0\.self_attn\.k_proj\.bias/);
    expect(r.stdout).toMatch(/model\.layers\.0\.self_attn\.q_proj\.weight\s+\[64, 64\]\s+← val_\d+ \(transposed\)/);
  });
});

describe('--fuse-mlp on a default-settings torch export', () => {
  it('optimize fuses every layer\'s MLP; train with a frozen gate weight follows the run without it; --no-fuse contradicts it', async () => {
    const stem = 'qwen2-default-gqa';
    const layers = fx(stem).config.num_hidden_layers;
    const o = await cli('optimize', `${DIR}${stem}.onnx`, '-o', 'mlp.onnx', '--fuse-mlp', '--json', 'mlp.json');
    expect(o.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'mlp.json'), 'utf8'));
    const fired = (rule: string) => report.passes.reduce((s: number, p: { counts: Record<string, number> }) => s + (p.counts[rule] ?? 0), 0);
    expect([fired('fuse-swiglu'), fired('fuse-swiglu-mlp')]).toEqual([layers, layers]);
    expect(loadFile(path.join(tmp, 'mlp.onnx')).graph.nodes.filter((n) => n.opType === 'SwiGLUMLP')).toHaveLength(layers);
    // Without the flag: no SwiGLUMLP.
    expect((await cli('optimize', `${DIR}${stem}.onnx`, '-o', 'plain.onnx')).code).toBe(0);
    expect(loadFile(path.join(tmp, 'plain.onnx')).graph.nodes.filter((n) => n.opType === 'SwiGLUMLP')).toHaveLength(0);

    const losses = async (extra: string[], json: string) => {
      const r = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--freeze', 'model.layers.*.mlp.gate_proj.weight', '--json', json, ...extra);
      expect(r.code, r.stderr).toBe(0);
      return fs.readFileSync(path.join(tmp, json), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    };
    const on = await losses(['--fuse-mlp'], 'on.jsonl');
    const off = await losses([], 'off.jsonl');
    expect(on).toHaveLength(4);
    on.forEach((l, i) => expect(Math.abs(l - off[i]), `step ${i + 1}`).toBeLessThan(1e-4));

    const bad = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--fuse-mlp', '--no-fuse');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--fuse-mlp and --no-fuse contradict each other/);
  }, 120_000);
});

describe('--fuse-attention on a default-settings torch export', () => {
  it('optimize fuses every layer\'s attention; train follows the run without it; --no-fuse contradicts it', async () => {
    const stem = 'qwen2-default-tied';
    const layers = fx(stem).config.num_hidden_layers;
    const o = await cli('optimize', `${DIR}${stem}.onnx`, '-o', 'attn.onnx', '--fuse-attention', '--json', 'attn.json');
    expect(o.code, o.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'attn.json'), 'utf8'));
    expect(report.passes.reduce((s: number, p: { counts: Record<string, number> }) => s + (p.counts['fuse-causal-attention'] ?? 0), 0)).toBe(layers);
    const fused = loadFile(path.join(tmp, 'attn.onnx')).graph.nodes;
    expect([fused.filter((n) => n.opType === 'CausalAttention').length, fused.filter((n) => n.opType === 'Softmax').length]).toEqual([layers, 0]);

    const losses = async (extra: string[], json: string) => {
      const r = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--json', json, ...extra);
      expect(r.code, r.stderr).toBe(0);
      // The rewrites the pipeline made (the attention fusion's, and the cleanup of the plumbing it frees).
      rewrites.push(Number(/fused \((\d+) rewrites\)/.exec(r.stdout)![1]));
      return fs.readFileSync(path.join(tmp, json), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    };
    const rewrites: number[] = [];
    const on = await losses(['--fuse-attention'], 'attn-on.jsonl');
    const off = await losses([], 'attn-off.jsonl');
    expect(rewrites[0]).toBeGreaterThan(rewrites[1] + layers);
    expect(on).toHaveLength(4);
    on.forEach((l, i) => expect(Math.abs(l - off[i]), `step ${i + 1}`).toBeLessThan(1e-4));

    const bad = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--fuse-attention', '--no-fuse');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--fuse-attention and --no-fuse contradict each other/);
  }, 120_000);
});

describe('--fuse-linear on a default-settings torch export', () => {
  it('optimize fuses the 4 attention projections of every layer (stored [K, N]: trans_b=0); train follows the run without it; --no-fuse contradicts it', async () => {
    const stem = 'qwen2-default-tied';
    const layers = fx(stem).config.num_hidden_layers;
    const o = await cli('optimize', `${DIR}${stem}.onnx`, '-o', 'linear.onnx', '--fuse-mlp', '--fuse-linear', '--json', 'linear.json');
    expect(o.code, o.stderr).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(tmp, 'linear.json'), 'utf8'));
    expect(report.passes.reduce((s: number, p: { counts: Record<string, number> }) => s + (p.counts['fuse-linear'] ?? 0), 0)).toBe(4 * layers);
    const fused = loadFile(path.join(tmp, 'linear.onnx')).graph.nodes.filter((n) => n.opType === 'Linear');
    expect(fused.map((n) => n.attrInt('trans_b', 1))).toEqual(Array(4 * layers).fill(0));

    const losses = async (extra: string[], json: string) => {
      const r = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--json', json, ...extra);
      expect(r.code, r.stderr).toBe(0);
      return fs.readFileSync(path.join(tmp, json), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    };
    const on = await losses(['--fuse-linear'], 'linear-on.jsonl');
    const off = await losses([], 'linear-off.jsonl');
    expect(on).toHaveLength(4);
    on.forEach((l, i) => expect(Math.abs(l - off[i]), `step ${i + 1}`).toBeLessThan(1e-5));

    const bad = await cli('train', `${DIR}${stem}.onnx`, ...TRAIN, '--fuse-linear', '--no-fuse');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--fuse-linear and --no-fuse contradict each other/);
  }, 120_000);
});
