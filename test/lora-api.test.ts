/**
 * LoRA through the training API and the CLI: adapter files (PEFT keys and config) round-trip as
 * `init`; merged weights are W + s·B·A (checked in float64 here) and the merged export gives the
 * trainer's loss in onnxruntime-node; a projection stored [in, out] (no exporter record) merges in
 * its own layout; one-line usage errors before any work; `ortfuse train --lora-init --save-adapter
 * --save-weights --save-model --merge`; the webgpu backend (SwiftShader) gives the cpu losses.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createTrainer, save } from '../src/index.js';
import type { Batch } from '../src/data/batches.js';
import { decodeSafetensors } from '../src/params/safetensors-bytes.js';
import { loadAdapterDir } from '../src/params/adapter-dir.js';
import { addLora, mergeLora } from '../src/params/lora.js';
import { resolveLora } from '../src/params/lora-config.js';
import { discoverParameters } from '../src/params/discover.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { buildModel } from '../passes/fusion-testing.js';
import { randomFeeds, runOrt } from '../src/rewrite/testing.js';
import { cli } from './cli-helpers.js';
import { gpuEnv } from './webgpu-helpers.js';

const FIX = new URL('../models/fixtures/default/', import.meta.url).pathname;
const PEFT = new URL('../models/fixtures/lora/qwen2-default-tied-lora', import.meta.url).pathname;
const MODEL = `${FIX}qwen2-default-tied.onnx`;
const fx = JSON.parse(fs.readFileSync(`${FIX}qwen2-default-tied.json`, 'utf8'));
const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
const batch = (b: { input_ids: number[][]; labels: number[][] }): Batch => ({ inputIds: i64(b.input_ids), labels: i64(b.labels), batch: b.input_ids.length, seq: b.input_ids[0].length });
const opts = { lr: 3e-3, steps: 4, warmup: 1 };

async function lossIn(bytes: Uint8Array, b: Batch): Promise<number> {
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  const r = await s.run({ input_ids: new ort.Tensor('int64', b.inputIds, [b.batch, b.seq]), labels: new ort.Tensor('int64', b.labels, [b.batch, b.seq]) });
  await s.release();
  return Number(r.loss.data[0]);
}

describe('LoRA training API (cpu)', () => {
  it('adapter files: PEFT keys and config, loaded back as init; merged weights are W + s·B·A and the merged export gives the trainer\'s loss', async () => {
    const init = loadAdapterDir(PEFT);
    const t = await createTrainer(MODEL, { ...opts, lora: { init } });
    expect(t.lora!.r).toBe(4);
    expect(t.lora!.alpha).toBe(8);
    expect(t.parameterNames).toHaveLength(28);
    for (let i = 0; i < 3; i++) await t.step(batch(fx.run.batches[i]));
    const b = batch(fx.inputs);
    const want = await t.evaluate([b]);
    const files = await t.adapterFiles();
    expect([...files.keys()].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const cfg = JSON.parse(new TextDecoder().decode(files.get('adapter_config.json')));
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0, bias: 'none', fan_in_fan_out: false, base_model_name_or_path: 'qwen2-default-tied' });
    expect(cfg.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const { tensors } = decodeSafetensors(files.get('adapter_model.safetensors')!);
    const p = await t.parameters();
    const q = 'model.layers.1.self_attn.q_proj';
    expect(tensors.get(`base_model.model.${q}.lora_A.weight`)!.shape).toEqual([4, 64]);
    expect(tensors.get(`base_model.model.${q}.lora_B.weight`)!.data).toEqual(p.get(`${q}.lora_B.weight`));
    // Started again from its own files: the same adapter, the same loss.
    const again = await createTrainer(MODEL, { ...opts, lora: { init: files } });
    expect(await again.evaluate([b])).toBe(want);
    await again.dispose();
    // Merged weights, checked in float64 against the base weights.
    const base = decodeSafetensors(await t.weightsFile()).tensors;
    const merged = decodeSafetensors(await t.weightsFile({ merge: true })).tensors;
    expect(base.size).toBe(Object.keys(fx.parameters).length);
    const A = p.get(`${q}.lora_A.weight`)!, B = p.get(`${q}.lora_B.weight`)!, W = base.get(`${q}.weight`)!.data, M = merged.get(`${q}.weight`)!.data;
    let worst = 0;
    for (let o = 0; o < 64; o++)
      for (let i = 0; i < 64; i++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += B[o * 4 + k] * A[k * 64 + i];
        worst = Math.max(worst, Math.abs(M[o * 64 + i] - (W[o * 64 + i] + 2 * acc)));
      }
    expect(worst).toBeLessThan(1e-6);
    expect(Math.max(...M.map((v, i) => Math.abs(v - W[i])))).toBeGreaterThan(1e-4);
    expect(merged.get('model.norm.weight')!.data).toEqual(base.get('model.norm.weight')!.data);
    // The merged export (the export's own graph, no adapter nodes) gives the trainer's loss.
    const exported = await t.exportModel();
    expect(exported.graph.nodes.some((n) => n.name.startsWith('lora'))).toBe(false);
    expect(Math.abs((await lossIn(save(exported), b)) - want)).toBeLessThan(1e-4);
    await t.dispose();
  });

  it('a projection stored [in, out] (graph roles, no record) merges in its own layout', async () => {
    const m = buildModel([{ name: 'x', elem: DataType.FLOAT, shape: ['B', 6] }], (b, x) => [b.op.Neg(b.op.MatMul(b.op.Relu(x), b.initializer('lin.weight', Tensor.from(DataType.FLOAT, [6, 5], Array.from({ length: 30 }, (_, i) => Math.sin(i))))))]);
    const feeds = randomFeeds(m, 3, { B: 4 });
    const [before] = await runOrt(m, feeds);
    const d = discoverParameters(m);
    const ad = addLora(m, d, resolveLora({ r: 2, alpha: 3, targets: ['lin'] }));
    expect(ad.modules[0]).toMatchObject({ module: 'lin', in: 6, out: 5, layout: 'transposed' });
    const Bv = m.graph.initializers.find((v) => v.name === 'lin.lora_B.weight')!;
    Bv.initializer = Tensor.from(DataType.FLOAT, [5, 2], Array.from({ length: 10 }, (_, i) => Math.cos(i)));
    const values = new Map(m.graph.initializers.map((v) => [v.name, v.initializer!.toArray() as Float32Array]));
    const [withLora] = await runOrt(m, feeds);
    const b0 = before.data as Float32Array;
    expect(Math.max(...(withLora.data as Float32Array).map((v, i) => Math.abs(v - b0[i])))).toBeGreaterThan(1e-2);
    const plain = buildModel([{ name: 'x', elem: DataType.FLOAT, shape: ['B', 6] }], (b, x) => [b.op.Neg(b.op.MatMul(b.op.Relu(x), b.initializer('lin.weight', Tensor.from(DataType.FLOAT, [6, 5], mergeLora(ad, () => values.get('lin.weight')!, values).get('lin.weight')!))))]);
    const [merged] = await runOrt(plain, feeds);
    const a = withLora.data as Float32Array, c = merged.data as Float32Array;
    expect(Math.max(...a.map((v, i) => Math.abs(v - c[i])))).toBeLessThan(1e-5);
  });

  it('refuses bad LoRA options with one line before any work', async () => {
    const cases: [unknown, RegExp][] = [
      ['r=0', /lora r must be an integer ≥ 1 \(got 0\)/],
      ['r=4,dropout=0.1', /lora dropout 0.1: dropout on the adapter input is not implemented.*use dropout=0/],
      ['r=4,rank=2', /unknown key 'rank'/],
      ['r=4,alpha', /'alpha' is not key=value/],
      ['targets=q,nothing.*', /lora target 'nothing.\*' matches no projection \(modules look like 'model.layers.0.self_attn.q_proj'/],
      [{ r: 2, targets: [] }, /lora targets must be a non-empty list/],
      [{ r: 8, init: loadAdapterDir(PEFT) }, /lora r=8, but the init adapter has r=4/],
    ];
    for (const [lora, re] of cases) await expect(createTrainer(MODEL, { lora: lora as never }), JSON.stringify(lora)).rejects.toThrow(re);
    await expect(createTrainer(MODEL, { lora: 'r=2', trainable: 'model.*' })).rejects.toThrow(/option trainable does not apply with lora/);
    const t = await createTrainer(MODEL, { steps: 2 });
    await expect(t.adapterFiles()).rejects.toThrow(/the trainer has no adapters \(create it with option lora\)/);
    await expect(t.weightsFile({ merge: true })).rejects.toThrow(/merge needs a trainer created with option lora/);
    await t.dispose();
  });
});

describe('ortfuse train --lora', () => {
  it('--lora-init DIR --save-adapter --save-weights --save-model --merge; usage errors name the flag', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-cli-'));
    const SMALL = ['--steps', '2', '--batch', '2', '--seq', '16', '--tokenizer', 'bytes', '--no-progress'];
    const r = await cli(dir, 'train', MODEL, ...SMALL, '--lora-init', PEFT, '--save-adapter', 'ad', '--save-weights', 'w.safetensors', '--save-model', 'm.onnx', '--merge');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/trained 8192 of 0\.12M float parameters \(28 tensors/);
    expect(r.stdout).not.toMatch(/warning: fewer than half/);
    expect(r.stdout).toMatch(/adapter: ad/);
    const files = loadAdapterDir(path.join(dir, 'ad'));
    const t = await createTrainer(MODEL, { lora: { init: files } });
    const b = batch(fx.inputs);
    const adapterLoss = await t.evaluate([b]);
    await t.dispose();
    expect(Math.abs((await lossIn(fs.readFileSync(path.join(dir, 'm.onnx')), b)) - adapterLoss)).toBeLessThan(1e-4);
    const merged = decodeSafetensors(fs.readFileSync(path.join(dir, 'w.safetensors'))).tensors;
    expect(merged.has('model.layers.0.mlp.up_proj.weight')).toBe(true);
    const bad: [string[], RegExp][] = [
      [['--merge', '--save-weights', 'x.safetensors'], /--merge needs --lora/],
      [['--lora', 'r=2', '--save-model', 'x.onnx'], /--save-model with --lora needs --merge/],
      [['--save-adapter', 'x'], /--save-adapter needs --lora/],
      [['--lora', 'r=2', '--freeze', 'model.norm.weight'], /--freeze does not apply with --lora/],
      [['--lora-init', 'missing'], /--lora-init .*missing: cannot read adapter_model.safetensors/],
      [['--lora', 'r=2,dropout=0.5'], /dropout on the adapter input is not implemented/],
    ];
    for (const [flags, re] of bad) {
      const e = await cli(dir, 'train', MODEL, ...SMALL, ...flags);
      expect(e.code, flags.join(' ')).not.toBe(0);
      expect(e.stderr).toMatch(re);
    }
    expect(fs.existsSync(path.join(dir, 'x.safetensors')) || fs.existsSync(path.join(dir, 'x'))).toBe(false);
  }, 120_000);
});

const env = await gpuEnv();

describe.skipIf(!env.ctx)('LoRA on the webgpu backend (dawn.node)', () => {
  it("gives the cpu backend's losses (within 1e-4) from PEFT's adapter", async () => {
    const run = async (backend: 'cpu' | 'webgpu') => {
      const t = await createTrainer(MODEL, { ...opts, lora: { init: loadAdapterDir(PEFT) }, backend, ...(backend === 'webgpu' ? { batch: 4, seq: 32 } : {}) });
      const out: number[] = [];
      for (let i = 0; i < 3; i++) out.push((await t.step(batch(fx.run.batches[i]))).loss);
      const files = await t.adapterFiles();
      await t.dispose();
      return { out, files };
    };
    const cpu = await run('cpu');
    const gpu = await run('webgpu');
    for (let i = 0; i < 3; i++) expect(Math.abs(gpu.out[i] - cpu.out[i])).toBeLessThan(1e-4);
    const a = decodeSafetensors(gpu.files.get('adapter_model.safetensors')!).tensors;
    expect(a.size).toBe(28);
  }, 300_000);
});
