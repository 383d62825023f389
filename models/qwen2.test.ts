import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { checkModel } from '../src/ir/checker.js';
import { loadFile, saveBytes, saveFile } from '../src/onnx/io.js';
import { TINY, type Qwen2Config } from './config.js';
import { buildQwen2 } from './qwen2.js';
import { generate } from './generate.js';
import { qwen2Parameters, Rng } from './weights.js';

/** Run a model (bytes or file) on input_ids/labels; ORT graph optimisations off. */
async function runLoss(model: Uint8Array | string, ids: BigInt64Array, labels: BigInt64Array, dims: [number, number]) {
  const s = await ort.InferenceSession.create(model as any, { graphOptimizationLevel: 'disabled' });
  try {
    const r = await s.run({ input_ids: new ort.Tensor('int64', ids, dims), labels: new ort.Tensor('int64', labels, dims) });
    return { loss: (r.loss.data as Float32Array)[0], logits: r.logits };
  } finally {
    await s.release();
  }
}

function randomTokens(n: number, vocab: number, seed: number): BigInt64Array {
  const rng = new Rng(seed);
  return BigInt64Array.from({ length: n }, () => BigInt(rng.nextU32() % vocab));
}

describe('buildQwen2 (random weights)', () => {
  it('passes the checker with the exporter-facing interface', () => {
    const m = buildQwen2(TINY, { seed: 1 });
    expect(checkModel(m)).toEqual([]);
    expect(m.opset()).toBe(20);
    expect(m.irVersion).toBe(10);
    expect(m.graph.inputs.map((v) => [v.name, v.tensorType?.shape])).toEqual([['input_ids', ['batch', 'seq']], ['labels', ['batch', 'seq']]]);
    expect(m.graph.outputs.map((v) => v.name)).toEqual(['loss', 'logits']);
    const names = new Set(m.graph.initializers.map((v) => v.name));
    for (const p of qwen2Parameters(TINY)) expect(names.has(p.name)).toBe(true);
    // Tied: the one table is called lm_head.weight, as the exporter names it.
    expect(names.has('model.embed_tokens.weight')).toBe(false);
    expect(m.graph.nodes.find((n) => n.opType === 'Gather')!.inputs[0]!.name).toBe('lm_head.weight');
  });

  it('tiny random model: loss near ln(vocab) at init, ignore_index labels excluded', async () => {
    const [B, S] = [2, 16];
    const ids = randomTokens(B * S, TINY.vocab_size, 7);
    const { loss, logits } = await runLoss(saveBytes(buildQwen2(TINY, { seed: 3 })), ids, ids, [B, S]);
    expect(logits.dims).toEqual([B, S, TINY.vocab_size]);
    expect(Math.abs(loss - Math.log(TINY.vocab_size))).toBeLessThan(0.1);
    // Masking all but one label position changes the loss to that position's term alone.
    const labels = new BigInt64Array(B * S).fill(-100n);
    labels[5] = 11n; // predicted from position 4 after the shift
    const one = await runLoss(saveBytes(buildQwen2(TINY, { seed: 3 })), ids, labels, [B, S]);
    const row = (logits.data as Float32Array).subarray(4 * TINY.vocab_size, 5 * TINY.vocab_size);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
    expect(one.loss).toBeCloseTo(lse - row[11], 5);
  });

  it('is deterministic per seed; different seeds differ', () => {
    const w = (seed: number) => buildQwen2(TINY, { seed }).graph.initializers.find((v) => v.name === 'model.layers.1.mlp.up_proj.weight')!.initializer!.bytes();
    expect(Buffer.from(w(5)).equals(Buffer.from(w(5)))).toBe(true);
    expect(Buffer.from(w(5)).equals(Buffer.from(w(6)))).toBe(false);
    const v = new Float32Array(w(5).slice().buffer);
    const std = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
  });

  it('causal: logits at a position do not depend on later tokens', async () => {
    const [B, S] = [1, 8];
    const a = randomTokens(S, TINY.vocab_size, 1);
    const b = a.slice();
    b[6] = (b[6] + 1n) % BigInt(TINY.vocab_size);
    const bytes = saveBytes(buildQwen2(TINY, { seed: 2 }));
    const la = (await runLoss(bytes, a, a, [B, S])).logits.data as Float32Array;
    const lb = (await runLoss(bytes, b, b, [B, S])).logits.data as Float32Array;
    const V = TINY.vocab_size;
    expect(Array.from(la.subarray(0, 6 * V))).toEqual(Array.from(lb.subarray(0, 6 * V)));
    expect(Array.from(la.subarray(6 * V, 7 * V))).not.toEqual(Array.from(lb.subarray(6 * V, 7 * V)));
  });

  it('external weights stream to a file, load back, and give the in-memory loss (untied, nll)', async () => {
    const cfg: Qwen2Config = { ...TINY, tie_word_embeddings: false };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-qwen2-'));
    const ext = buildQwen2(cfg, { seed: 4, loss: 'nll', external: { dir, file: 'm.onnx.data' } });
    expect(ext.graph.initializers.filter((v) => v.initializer!.external).length).toBe(qwen2Parameters(cfg).length);
    saveFile(ext, path.join(dir, 'm.onnx'), { referenceInPlace: true, externalData: false });
    const elems = qwen2Parameters(cfg).reduce((s, p) => s + p.dims.reduce((a, b) => a * b, 1), 0);
    expect(fs.statSync(path.join(dir, 'm.onnx.data')).size).toBeGreaterThanOrEqual(elems * 4);
    expect(fs.statSync(path.join(dir, 'm.onnx')).size).toBeLessThan(64 * 1024);
    const reloaded = loadFile(path.join(dir, 'm.onnx'));
    expect(checkModel(reloaded)).toEqual([]);
    const [B, S] = [2, 8];
    const ids = randomTokens(B * S, cfg.vocab_size, 9);
    const fromFile = await runLoss(path.join(dir, 'm.onnx'), ids, ids, [B, S]);
    const inMemory = await runLoss(saveBytes(buildQwen2(cfg, { seed: 4, loss: 'nll' })), ids, ids, [B, S]);
    const sce = await runLoss(saveBytes(buildQwen2(cfg, { seed: 4 })), ids, ids, [B, S]);
    expect(fromFile.loss).toBe(inMemory.loss);
    expect(Math.abs(sce.loss - inMemory.loss)).toBeLessThan(1e-5);
  });

  it('generate() writes <out> and <out>.data that ORT runs', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-gen-')), 'tiny.onnx');
    const r = generate(TINY, out, { seed: 8 });
    expect(r.data).toBe(`${out}.data`);
    expect(r.dataBytes).toBe(fs.statSync(`${out}.data`).size);
    const ids = randomTokens(16, TINY.vocab_size, 2);
    const fromFile = await runLoss(out, ids, ids, [2, 8]);
    const inMemory = await runLoss(saveBytes(buildQwen2(TINY, { seed: 8 })), ids, ids, [2, 8]);
    expect(fromFile.loss).toBe(inMemory.loss);
  });

  it('rejects a weights map that lacks a parameter or has the wrong size', () => {
    const values = new Map<string, Float32Array>();
    expect(() => buildQwen2(TINY, { weights: values })).toThrow(/weights map has no tensor 'model.layers.0.self_attn.q_proj.weight'/);
    values.set('model.layers.0.self_attn.q_proj.weight', new Float32Array(3));
    expect(() => buildQwen2(TINY, { weights: values })).toThrow(/'model.layers.0.self_attn.q_proj.weight' has 3 values, expected 4096 for shape \[64,64\]/);
  });
});
