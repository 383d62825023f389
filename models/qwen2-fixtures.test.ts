/**
 * Acceptance 2 of issue 2: the builder graph and the real torch export (models/fixtures) of the
 * same config have the same op histogram (shape plumbing aside: models/histogram.ts states the
 * rule) and give the same loss in onnxruntime-node on the same weights and inputs (fp32,
 * |Δ| < 1e-5). Stronger checks ride along: the full histogram, and node-by-node identity of ops,
 * attributes, constants and wiring.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { checkModel } from '../src/ir/checker.js';
import { DataType } from '../src/onnx/schema.js';
import { loadFile, saveBytes } from '../src/onnx/io.js';
import { firstStructuralDifference } from './compare.js';
import { loadConfigFile } from './config.js';
import { histogramDiff, opHistogram } from './histogram.js';
import { buildQwen2 } from './qwen2.js';
import { qwen2Parameters } from './weights.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const VARIANTS = [
  { stem: 'qwen2-tiny', loss: 'sce' },
  { stem: 'qwen2-tiny-untied', loss: 'sce' },
  { stem: 'qwen2-tiny-nll', loss: 'nll' },
] as const;

async function runLoss(model: Uint8Array, meta: { inputs: { input_ids: number[][]; labels: number[][] } }) {
  const dims = [meta.inputs.input_ids.length, meta.inputs.input_ids[0].length];
  const t = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
  const s = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
  try {
    const r = await s.run({ input_ids: t(meta.inputs.input_ids), labels: t(meta.inputs.labels) });
    return { loss: (r.loss.data as Float32Array)[0], logits: r.logits.data as Float32Array };
  } finally {
    await s.release();
  }
}

describe.each(VARIANTS)('builder vs torch export: $stem', ({ stem, loss }) => {
  const file = path.join(dir, `${stem}.onnx`);
  const load = () => {
    const fixture = loadFile(file);
    const config = loadConfigFile(path.join(dir, `${stem}.json`));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, `${stem}.json`), 'utf8'));
    const weights = new Map<string, Float32Array>();
    for (const v of fixture.graph.initializers)
      if (v.initializer!.dtype === DataType.FLOAT) weights.set(v.name, v.initializer!.toArray() as Float32Array);
    return { fixture, config, meta, built: buildQwen2(config, { weights, loss }) };
  };

  it('same op histogram (shape plumbing aside, and in full) and the same nodes', () => {
    const { fixture, built } = load();
    expect(checkModel(built)).toEqual([]);
    expect(histogramDiff(opHistogram(built, { ignoreShapePlumbing: true }), opHistogram(fixture, { ignoreShapePlumbing: true }))).toEqual({});
    expect(histogramDiff(opHistogram(built), opHistogram(fixture))).toEqual({});
    expect(firstStructuralDifference(built, fixture)).toBeUndefined();
    expect([built.opset(), built.irVersion]).toEqual([fixture.opset(), fixture.irVersion]);
    const params = (m: typeof built) => m.graph.initializers.filter((v) => /^(model|lm_head)\./.test(v.name)).map((v) => [v.name, v.initializer!.dims]);
    expect(params(built)).toEqual(params(fixture));
  });

  it('same loss and logits in onnxruntime-node on the fixture weights and inputs', async () => {
    const { meta, built } = load();
    const ours = await runLoss(saveBytes(built), meta);
    const theirs = await runLoss(fs.readFileSync(file), meta);
    expect(Math.abs(ours.loss - theirs.loss)).toBeLessThan(1e-5);
    expect(Math.abs(ours.loss - meta.loss)).toBeLessThan(1e-5);
    let maxDiff = 0;
    for (let i = 0; i < ours.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours.logits[i] - theirs.logits[i]));
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it('random weights: the parameter list matches the export', () => {
    const { fixture, config } = load();
    const names = new Set(fixture.graph.initializers.map((v) => v.name));
    for (const p of qwen2Parameters(config)) expect(names.has(p.name), p.name).toBe(true);
  });
});

describe('the comparison can fail', () => {
  it('detects a changed op, a changed constant, and a histogram difference', () => {
    const fixture = loadFile(path.join(dir, 'qwen2-tiny.onnx'));
    const config = loadConfigFile(path.join(dir, 'qwen2-tiny.json'));
    expect(firstStructuralDifference(buildQwen2(config, { loss: 'nll' }), fixture)).toMatch(/^node \d+:/);
    expect(firstStructuralDifference(buildQwen2({ ...config, rms_norm_eps: 1e-5 }), fixture)).toMatch(/^node 57:/);
    const diff = histogramDiff(opHistogram(buildQwen2({ ...config, num_hidden_layers: 3 }), { ignoreShapePlumbing: true }), opHistogram(fixture, { ignoreShapePlumbing: true }));
    expect(diff.Softmax).toEqual([3, 2]);
  });
});
