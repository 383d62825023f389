/**
 * Issue 3, acceptance 1, 2 (CPU), 5 for fuse-rms-norm, fuse-swiglu and fuse-rope: on the real
 * torch 2.11 exports (models/fixtures), the builder's tiny graph and the builder's 0.5B graph
 * (structure only), `defaultPipeline()` leaves 2·layers+1 RMSNorm (RMSNormalization on opset 23),
 * layers SwiGLU and 2·layers RoPE (RotaryEmbedding), with no unfused remains and nothing for
 * `--explain` to say about these rules; the checker passes after every pass; the optimized model
 * (portable bodies attached for 'cpu') gives the original loss in onnxruntime-node (relative error
 * < 1e-5); a second run changes nothing; a model without these patterns passes through unchanged.
 * The linear-CE counts live in their own `it` blocks (fuse-linear-cross-entropy's owner).
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import { QWEN2_0_5B, TINY, type Qwen2Config } from '../models/config.js';
import { buildQwen2, buildQwen2Structure } from '../models/qwen2.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { checkModel } from '../src/ir/checker.js';
import type { Model } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { loadBytes, loadFile, saveBytes } from '../src/onnx/io.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { opCounts } from '../src/rewrite/testing.js';

const DIR = new URL('../models/fixtures/', import.meta.url).pathname;
const FIXTURES = ['qwen2-tiny', 'qwen2-tiny-untied', 'qwen2-tiny-nll', 'qwen2-tiny-op23'];
const MY_RULES = ['fuse-rms-norm', 'fuse-swiglu', 'fuse-rope'];
/** Ops of the unfused patterns that must all be gone (none of them appears elsewhere in Qwen2). */
const REMAINS = ['Pow', 'ReduceMean', 'Sqrt', 'Reciprocal', 'Sigmoid', 'Neg'];

interface FixtureJson {
  loss: number;
  inputs: { input_ids: number[][]; labels: number[][] };
}

function optimize(m: Model) {
  return runPipeline(m, defaultPipeline(), { checkEachPass: true, explain: true });
}

function expectFused(m: Model, layers: number, report: ReturnType<typeof optimize>) {
  const c = opCounts(m);
  expect((c.RMSNorm ?? 0) + (c.RMSNormalization ?? 0)).toBe(2 * layers + 1);
  expect(c.SwiGLU).toBe(layers);
  expect((c.RoPE ?? 0) + (c.RotaryEmbedding ?? 0)).toBe(2 * layers);
  for (const op of REMAINS) expect(c[op] ?? 0, op).toBe(0);
  expect(report.explanations.filter((e) => MY_RULES.includes(e.rule))).toEqual([]);
}

/** Loss in onnxruntime-node (CPU, graph optimisations off) on the fixture's inputs (first `rows` rows). */
async function loss(m: Model, fx: FixtureJson, rows: number): Promise<number> {
  const ids = fx.inputs.input_ids.slice(0, rows);
  const labels = fx.inputs.labels.slice(0, rows);
  const t = (r: number[][]) => new ort.Tensor('int64', BigInt64Array.from(r.flat(), BigInt), [r.length, r[0].length]);
  const s = await ort.InferenceSession.create(saveBytes(m), { graphOptimizationLevel: 'disabled' });
  try {
    const out = await s.run({ input_ids: t(ids), labels: t(labels) });
    return (out.loss.data as Float32Array)[0];
  } finally {
    await s.release();
  }
}


/** Nodes (op, inputs, outputs, attributes), value types and initializer names, for graphs whose weights cannot be read. */
function structure(m: Model): string {
  const t = (v: { name: string; type?: unknown } | null) => (v ? `${v.name}:${JSON.stringify(v.type ?? null)}` : '');
  const attrs = (n: Model['graph']['nodes'][number]) => [...n.attributes.values()].map((a) => `${a.name}=${String(a.value)}`);
  return JSON.stringify({
    nodes: m.graph.nodes.map((n) => [n.domain, n.opType, n.inputs.map(t), n.outputs.map(t), attrs(n)]),
    inits: m.graph.initializers.map((v) => v.name),
    opsets: [...m.opsetImports],
  });
}

/** A second optimization reports nothing and changes nothing (bytes, or structure for the 0.5B graph). */
function expectIdempotent(m: Model, snapshot: (m: Model) => string | Buffer = (x) => Buffer.from(saveBytes(x))) {
  const before = snapshot(m);
  const again = optimize(m);
  expect(again.passes.filter((p) => p.modified).map((p) => p.name)).toEqual([]);
  expect(again.passes.every((p) => Object.keys(p.counts).length === 0)).toBe(true);
  expect(snapshot(m)).toEqual(before);
}

describe('fuse-rms-norm, fuse-swiglu, fuse-rope on the torch fixtures', () => {
  for (const stem of FIXTURES)
    it.skipIf(!fs.existsSync(`${DIR}${stem}.onnx`))(stem, async () => {
      const fx = JSON.parse(fs.readFileSync(`${DIR}${stem}.json`, 'utf8')) as FixtureJson;
      const m = loadFile(`${DIR}${stem}.onnx`);
      // ORT 1.30's RotaryEmbedding-23 rejects the op23 export's batch-1 caches for batch > 1 (README).
      const rows = stem.endsWith('op23') ? 1 : 2;
      const want = await loss(m, fx, rows);
      if (rows === 2) expect(Math.abs(want - fx.loss) / fx.loss).toBeLessThan(1e-5);
      const report = optimize(m);
      expectFused(m, 2, report);
      const counts = Object.assign({}, ...report.passes.map((p) => p.counts));
      if (stem.endsWith('op23')) expect(counts).toMatchObject({ 'fuse-swiglu': 2 }); // the export fused the rest
      else expect(counts).toMatchObject({ 'fuse-rms-norm': 5, 'fuse-swiglu': 2, 'fuse-rope': 4 });
      expectIdempotent(m);
      ensureFunctions(m, 'cpu');
      const got = await loss(loadBytes(saveBytes(m)), fx, rows);
      expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
    });
});

describe('fuse-rms-norm, fuse-swiglu, fuse-rope on builder graphs', () => {
  it('tiny (random weights): counts, loss, idempotent', async () => {
    const fx = JSON.parse(fs.readFileSync(`${DIR}qwen2-tiny.json`, 'utf8')) as FixtureJson;
    const m = buildQwen2(TINY, { seed: 5 });
    const want = await loss(m, fx, 2);
    const report = optimize(m);
    expectFused(m, TINY.num_hidden_layers, report);
    expectIdempotent(m);
    ensureFunctions(m, 'cpu');
    const got = await loss(m, fx, 2);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
  });

  it('0.5B (structure only): counts, fast, idempotent', () => {
    const m = buildQwen2Structure(QWEN2_0_5B);
    const t0 = performance.now();
    const report = runPipeline(m, defaultPipeline(), { explain: true });
    const ms = performance.now() - t0;
    expectFused(m, QWEN2_0_5B.num_hidden_layers, report);
    expect(ms).toBeLessThan(5000);
    expect(checkModel(m)).toEqual([]);
    expectIdempotent(m, structure);
  });
});

describe('a model without Qwen2 patterns', () => {
  it('passes through unchanged with an empty report', () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', DataType.FLOAT, ['B', 8]);
    const w1 = b.constant(Array.from({ length: 64 }, (_, i) => (i % 7) / 7 - 0.5), { dims: [8, 8], dtype: DataType.FLOAT });
    const h = b.op.Relu(b.op.MatMul(x, w1));
    // Sigmoid gate and a mean over a non-last axis: near the patterns, but not them.
    const gated = b.op.Mul(h, b.op.Sigmoid(x));
    b.output(b.op.Add(gated, b.op.ReduceMean(b.op.Mul(h, h), b.constant([0]))), 'y');
    const before = saveBytes(m);
    const report = runPipeline(m, defaultPipeline(), { checkEachPass: true });
    expect(report.passes.filter((p) => p.modified || Object.keys(p.counts).length)).toEqual([]);
    expect(Buffer.from(saveBytes(m)).equals(Buffer.from(before))).toBe(true);
  });
});
