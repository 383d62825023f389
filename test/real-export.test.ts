/**
 * Default-settings torch exports (models/fixtures/default, `torch.onnx.export(..., dynamo=True)`
 * with the exporter's optimizer on: folded `val_N` transposes, merged initializers) train every
 * torch parameter, under its torch name, with torch's gradients; and 50 steps of ortfuse's AdamW
 * follow torch's AdamW run on the same batches. References: the fixture's .safetensors
 * (`grad.<torch name>`, fp32 torch on CPU) and .json (loss, parameters, the 50-step run).
 */
import * as fs from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadBytes, loadFile } from '../src/onnx/io.js';
import { prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer } from '../src/runtime/trainer.js';
import { discoverParameters } from '../src/params/discover.js';
import { loadSafetensors } from '../src/params/safetensors.js';
import type { Batch } from '../src/data/batches.js';
import { relL2 } from './numerics.js';

const DIR = new URL('../models/fixtures/default/', import.meta.url).pathname;

interface Fixture {
  loss: number;
  parameters: Record<string, number[]>;
  inputs: { input_ids: number[][]; labels: number[][] };
  config: { tie_word_embeddings: boolean; num_hidden_layers: number };
  run?: {
    settings: { steps: number; warmup: number; lr: number; weight_decay: number; clip: number; min_ratio: number };
    losses: number[];
    batches: { input_ids: number[][]; labels: number[][] }[];
  };
}

const fixture = (stem: string): Fixture => JSON.parse(fs.readFileSync(`${DIR}${stem}.json`, 'utf8'));
const load = (stem: string) => (fs.existsSync(`${DIR}${stem}.onnx`) ? loadFile(`${DIR}${stem}.onnx`) : loadBytes(gunzipSync(fs.readFileSync(`${DIR}${stem}.onnx.gz`))));

function batch(b: { input_ids: number[][]; labels: number[][] }): Batch {
  const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
  return { inputIds: i64(b.input_ids), labels: i64(b.labels), batch: b.input_ids.length, seq: b.input_ids[0].length };
}


describe('parameter discovery on torch exports', () => {
  // default optimizer; static shapes; optimize=False; opset 18 (GQA, sdpa); opset 23 (RMSNormalization-23, RotaryEmbedding-23)
  it.each(['qwen2-default-tied', 'qwen2-default-gqa', 'qwen2-default-static', 'qwen2-noopt-tied', 'qwen2-op18-gqa', 'qwen2-op23-tied'])('%s: every torch parameter, by name and shape, no buffer', (stem) => {
    const fx = fixture(stem);
    const d = discoverParameters(load(stem));
    expect(d.method).toBe('torch-record');
    expect(new Map(d.parameters.map((p) => [p.name, p.shape]))).toEqual(new Map(Object.entries(fx.parameters)));
    // tied: one parameter that the lm_head reads too
    if (fx.config.tie_word_embeddings) expect(d.parameters.find((p) => p.name === 'model.embed_tokens.weight')!.aliases).toEqual(['lm_head.weight']);
    for (const p of d.nonParameters) expect(p.name).not.toMatch(/(weight|bias)$/);
  });
});

describe('parameter discovery without the exporter\'s record (graph roles)', () => {
  it('the default export stripped of its node records: every weight by its role, the folded inv_freq not', () => {
    const m = load('qwen2-default-tied');
    for (const n of m.graph.nodes) n.extra.metadata_props = [];
    const d = discoverParameters(m);
    expect(d.method).toBe('graph-roles');
    const floats = m.graph.initializers.filter((v) => v.initializer!.dtype === 1 && v.initializer!.size > 1).map((v) => v.name);
    // lm_head.weight, 14 folded val_N weights, the merged q bias, k/v bias and norm weight (one tensor each: without a record nothing says they were distinct)
    expect(d.parameters.map((p) => p.name).sort()).toEqual(floats.filter((n) => n !== 'expand_2').sort());
    expect(d.parameters).toHaveLength(18);
    expect(d.nonParameters.filter((p) => p.size > 1).map((p) => p.name)).toEqual(['expand_2']);
  });
});

describe('a bfloat16 export (torch_dtype=bfloat16, default exporter settings)', () => {
  it('is upcast to fp32 on adoption: no half type left, the same parameters and fusions as the fp32 export of the config', () => {
    const m = load('qwen2-default-bf16');
    const half = (mm: typeof m) => [
      ...mm.graph.initializers.filter((v) => v.initializer!.dtype === 16).map((v) => `initializer ${v.name}`),
      ...[...mm.graph.inputs, ...mm.graph.outputs, ...mm.graph.nodes.flatMap((n) => n.outputs)].filter((v) => v.tensorType?.elemType === 16).map((v) => `value ${v.name}`),
      ...mm.graph.nodes.filter((n) => n.opType === 'Cast' && n.attrInt('to') === 16).map((n) => `Cast ${n.name}`),
    ];
    expect(half(m).length).toBeGreaterThan(40); // as exported: weights, activations and casts in bf16
    const fx = fixture('qwen2-default-bf16');
    const p = prepareTraining(m, { fuse: true, target: 'cpu' });
    expect(p.upcast).toMatchObject({ from: ['bfloat16'] });
    expect(p.upcast!.initializers).toBeGreaterThan(20);
    expect(half(m)).toEqual([]);
    expect(p.parameters.sort()).toEqual(Object.keys(fx.parameters).sort());
    const tied = prepareTraining(load('qwen2-default-tied'), { fuse: true, target: 'cpu' });
    expect(tied.upcast).toBeUndefined();
    const fused = (q: typeof p) => Object.fromEntries(q.report!.passes.filter((x) => x.name.startsWith('fuse-')).map((x) => [x.name, x.counts]));
    expect(fused(p)).toEqual(fused(tied));
  });
});

describe('a bfloat16 export gives its weights back in bfloat16', () => {
  it('createTrainer on the bf16 fixture: weightsFile() is BF16, the trained values rounded to nearest even; an fp32 export stays F32', async () => {
    const { createTrainer } = await import('../src/training/trainer.js');
    const { decodeSafetensors } = await import('../src/params/safetensors-bytes.js');
    const { narrowToHalf, widenHalf } = await import('../src/onnx/half.js');
    const fx = fixture('qwen2-default-bf16');
    const t = await createTrainer(`${DIR}qwen2-default-bf16.onnx`, { lr: 1e-3, steps: 2 });
    expect(t.weightsDtype).toBe('BF16');
    for (const b of fx.run!.batches.slice(0, 2)) await t.step(batch(b));
    const bytes = await t.weightsFile();
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true)))));
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names.sort()).toEqual(Object.keys(fx.parameters).sort());
    expect(new Set(names.map((n) => header[n].dtype))).toEqual(new Set(['BF16']));
    const trained = await t.parameters();
    const back = decodeSafetensors(bytes).tensors;
    const embed = trained.get('model.embed_tokens.weight')!;
    expect(back.get('model.embed_tokens.weight')!.data).toEqual(widenHalf(16, narrowToHalf(16, embed)));
    await t.dispose();
    const f = await createTrainer(`${DIR}qwen2-default-tied.onnx`, { lr: 1e-3, steps: 1 });
    expect(f.weightsDtype).toBe('F32');
    await f.dispose();
  });

  it('the bf16 fixture trains in mixed precision too (upcast, then f16 GEMM operands in the fused ops): losses within 1e-3 of the fp32 run, weights back in BF16', async () => {
    const { createTrainer } = await import('../src/training/trainer.js');
    const fx = fixture('qwen2-default-bf16');
    const losses: number[][] = [];
    for (const precision of ['fp32', 'mixed'] as const) {
      const t = await createTrainer(`${DIR}qwen2-default-bf16.onnx`, { lr: 1e-3, steps: 3, fuseMlp: true, precision });
      const run: number[] = [];
      for (const b of fx.run!.batches.slice(0, 3)) {
        const r = await t.step(batch(b));
        expect(r.lossScale).toBe(precision === 'mixed' ? 2 ** 16 : undefined);
        expect(r.skipped).toBe(false);
        run.push(r.loss);
      }
      if (precision === 'mixed') expect(t.weightsDtype).toBe('BF16');
      await t.dispose();
      losses.push(run);
    }
    for (const [i, l] of losses[1].entries()) expect(Math.abs(l - losses[0][i]) / losses[0][i], `step ${i + 1}`).toBeLessThan(1e-3);
    expect(losses[1]).not.toEqual(losses[0]);
  });
});

// fused-mlp: the default fusions plus each whole MLP as one SwiGLUMLP (--fuse-mlp), whose backward recomputes gate and up.
// fused-attn: the default fusions plus each layer's attention as one CausalAttention (--fuse-attention; eager and sdpa exports).
// fused-linear: the default fusions plus every projection by a parameter as one Linear (--fuse-linear; adopted weights: trans_b=1).
describe.each(['unfused', 'fused', 'fused-mlp', 'fused-attn', 'fused-linear'] as const)('default-settings exports train like torch (%s)', (mode) => {
  // bf16: the model exported in bfloat16 (torch_dtype=bfloat16), upcast on load; its references are the fp32 upcast's.
  it.each(['qwen2-default-tied', 'qwen2-default-gqa', 'qwen2-default-static', 'qwen2-default-bf16'])('%s: gradient of every torch parameter (rel L2 < 1e-3)', async (stem) => {
    const fx = fixture(stem);
    const grads = loadSafetensors(`${DIR}${stem === 'qwen2-default-static' ? 'qwen2-default-tied' : stem}.safetensors`).tensors;
    const prepared = prepareTraining(load(stem), { fuse: mode !== 'unfused', fuseMlp: mode === 'fused-mlp', fuseAttention: mode === 'fused-attn', fuseLinear: mode === 'fused-linear', target: 'cpu' });
    expect(prepared.parameters.sort()).toEqual(Object.keys(fx.parameters).sort());
    expect(prepared.parameterReport.frozen).toEqual([]);
    if (mode !== 'unfused') {
      const fired = (rule: string) => prepared.report!.passes.reduce((s, p) => s + (p.counts[rule] ?? 0), 0);
      expect([fired('fuse-linear-cross-entropy'), fired('fuse-rms-norm'), fired('fuse-swiglu'), fired('fuse-rope')]).toEqual([1, 2 * fx.config.num_hidden_layers + 1, fx.config.num_hidden_layers, 2 * fx.config.num_hidden_layers]);
      expect(fired('fuse-swiglu-mlp')).toBe(mode === 'fused-mlp' ? fx.config.num_hidden_layers : 0);
      const ops = (t: string) => prepared.train.graph.nodes.filter((n) => n.opType === t).length;
      // fused: SwiGLU nodes (forward ones and their recomputed clones); fused-mlp: none left outside the MLP op.
      const L = fx.config.num_hidden_layers;
      expect([ops('SwiGLUMLP'), ops('SwiGLUMLPGrad'), ops('SwiGLU') > 0]).toEqual(mode === 'fused-mlp' ? [L, L, false] : [0, 0, true]);
      // fused-attn: no Softmax (nor its T×T gradient) left anywhere in the step.
      expect(fired('fuse-causal-attention')).toBe(mode === 'fused-attn' ? L : 0);
      expect([ops('CausalAttention'), ops('CausalAttentionGrad'), ops('Softmax') > 0]).toEqual(mode === 'fused-attn' ? [L, L, false] : [0, 0, true]);
      // fused-linear: q, k, v, o and (the MLP not fused) gate, up, down of every layer, in torch's layout.
      expect(fired('fuse-linear')).toBe(mode === 'fused-linear' ? 7 * L : 0);
      if (mode === 'fused-linear') expect(prepared.train.graph.nodes.filter((n) => n.opType === 'Linear').map((n) => n.attrInt('trans_b', 1))).toEqual(Array(7 * L).fill(1));
    }
    const t = await CpuTrainer.create(prepared.train, prepared.initial, { optimizer: { lr: 1e-3 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 1 } });
    const { loss, grads: got } = await t.lossAndGrads(batch(fx.inputs));
    expect(Math.abs(loss - fx.loss) / fx.loss).toBeLessThan(1e-5);
    let worst = 0;
    for (const name of Object.keys(fx.parameters)) {
      const want = grads.get(`grad.${name}`)!;
      const err = relL2(got.get(name)!, want.data);
      worst = Math.max(worst, err);
      expect(err, name).toBeLessThan(1e-3);
    }
    console.log(`${stem} ${mode}: ${prepared.parameters.length} parameters, loss ${loss} (torch ${fx.loss}), worst gradient rel L2 ${worst.toExponential(2)}`);
    await t.release();
  });
});

describe('--fuse-mlp on an export without the exporter\'s record (weights stored [in, out])', () => {
  it('qwen2-default-tied stripped of its node records: every MLP fused through inserted Transposes; loss and gradients as the default fusions', async () => {
    const stripped = () => {
      const m = load('qwen2-default-tied');
      for (const n of m.graph.nodes) n.extra.metadata_props = [];
      return m;
    };
    const fx = fixture('qwen2-default-tied');
    const run = async (fuseMlp: boolean) => {
      const p = prepareTraining(stripped(), { fuse: true, fuseMlp, target: 'cpu' });
      expect(p.discovery.method).toBe('graph-roles');
      const fired = p.report!.passes.reduce((s, q) => s + (q.counts['fuse-swiglu-mlp'] ?? 0), 0);
      expect(fired).toBe(fuseMlp ? fx.config.num_hidden_layers : 0);
      const t = await CpuTrainer.create(p.train, p.initial, { optimizer: { lr: 1e-3 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 1 } });
      const r = await t.lossAndGrads(batch(fx.inputs));
      await t.release();
      return r;
    };
    const [on, off] = [await run(true), await run(false)];
    expect(Math.abs(on.loss - off.loss)).toBeLessThan(1e-6);
    expect([...on.grads.keys()].sort()).toEqual([...off.grads.keys()].sort());
    for (const [name, g] of off.grads) expect(relL2(on.grads.get(name)!, g), name).toBeLessThan(1e-5);
  });
});

describe('50 AdamW steps against torch', () => {
  it.each([['qwen2-default-tied', 'fused'], ['qwen2-default-gqa', 'fused'], ['qwen2-default-gqa', 'unfused'], ['qwen2-default-gqa', 'fused-mlp'], ['qwen2-default-gqa', 'fused-attn'], ['qwen2-default-tied', 'fused-attn'], ['qwen2-default-bf16', 'fused']])('%s: every step\'s loss within 1e-3 (%s)', async (stem, mode) => {
    const fx = fixture(stem);
    const r = fx.run!;
    const prepared = prepareTraining(load(stem), { fuse: mode !== 'unfused', fuseMlp: mode === 'fused-mlp', fuseAttention: mode === 'fused-attn', target: 'cpu' });
    const t = await CpuTrainer.create(prepared.train, prepared.initial, {
      optimizer: { lr: r.settings.lr, weightDecay: r.settings.weight_decay, maxGradNorm: r.settings.clip },
      schedule: { lr: r.settings.lr, warmupSteps: r.settings.warmup, totalSteps: r.settings.steps, minRatio: r.settings.min_ratio },
    });
    const losses: number[] = [];
    for (const b of r.batches) losses.push((await t.train(batch(b))).loss);
    const worst = Math.max(...losses.map((l, i) => Math.abs(l - r.losses[i])));
    console.log(`${stem} ${mode}: 50 steps ${losses[0].toFixed(5)} -> ${losses[49].toFixed(5)} (torch ${r.losses[0].toFixed(5)} -> ${r.losses[49].toFixed(5)}), worst |dloss| ${worst.toExponential(2)}`);
    for (let i = 0; i < losses.length; i++) expect(Math.abs(losses[i] - r.losses[i]), `step ${i + 1}`).toBeLessThan(1e-3);
    await t.release();
  }, 120_000);
});
