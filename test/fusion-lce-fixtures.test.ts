/**
 * Issue 3, acceptance 1 and 2 for fuse-linear-cross-entropy (and drop-logits): on the real torch
 * 2.11 exports (models/fixtures), the builder's tiny graph (SCE and NLL losses) and the builder's
 * 0.5B graph (structure only), `defaultPipeline()` leaves exactly one FusedLinearCrossEntropy and no
 * SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss / LogSoftmax, with nothing for `--explain` to
 * say about the rule. The optimized model gives the original loss in
 *   - onnxruntime-node CPU, 'cpu' bodies (Loop over row chunks): relative error < 1e-5;
 *   - onnxruntime-web wasm in Node, 'cpu' bodies: < 1e-5;
 *   - onnxruntime-node's WebGPU EP, 'webgpu' bodies (no Loop), SwiftShader without a GPU: < 1e-4.
 * The original loss is onnxruntime-node CPU on the unfused graph (and torch's, for the fixtures).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as ortw from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import type { Target } from '../src/fused/types.js';
import { QWEN2_0_5B, TINY, type Qwen2Config } from '../models/config.js';
import { buildQwen2, buildQwen2Structure } from '../models/qwen2.js';
import type { Model } from '../src/ir/graph.js';
import { runCli } from '../src/cli/program.js';
import { loadBytes, loadFile, saveBytes } from '../src/onnx/io.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { opCounts } from '../src/rewrite/testing.js';
import { preloadVulkanLoader, SWIFTSHADER_ICD, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';

const DIR = new URL('../models/fixtures/', import.meta.url).pathname;
const RULE = 'fuse-linear-cross-entropy';
const GONE = ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'LogSoftmax'];

interface FixtureJson {
  loss: number;
  inputs: { input_ids: number[][]; labels: number[][] };
}
const fixtureJson = (stem: string) => JSON.parse(fs.readFileSync(`${DIR}${stem}.json`, 'utf8')) as FixtureJson;

type Runtime = 'node-cpu' | 'web-wasm' | 'node-webgpu';

/** The loss of `m` on the fixture inputs (first `rows` rows) in a runtime, graph optimisations off. */
async function loss(m: Model | Uint8Array, fx: FixtureJson, rows: number, runtime: Runtime = 'node-cpu'): Promise<number> {
  const bytes = m instanceof Uint8Array ? m : saveBytes(m);
  const ids = fx.inputs.input_ids.slice(0, rows);
  const labels = fx.inputs.labels.slice(0, rows);
  const lib = (runtime === 'web-wasm' ? ortw : ort) as typeof ort;
  const t = (r: number[][]) => new lib.Tensor('int64', BigInt64Array.from(r.flat(), BigInt), [r.length, r[0].length]);
  const eps = runtime === 'web-wasm' ? ['wasm'] : runtime === 'node-webgpu' ? ['webgpu'] : ['cpu'];
  const s = await lib.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', executionProviders: eps, logSeverityLevel: 3 });
  try {
    const out = await s.run({ input_ids: t(ids), labels: t(labels) });
    return (out.loss.data as Float32Array)[0];
  } finally {
    await s.release();
  }
}

/** The default pipeline with --explain and the checker after every pass; asserts the linear-CE outcome. */
function optimizeAndCount(m: Model, options: Record<string, unknown> = {}) {
  const report = runPipeline(m, defaultPipeline(), { checkEachPass: true, explain: true, options });
  const counts = Object.assign({}, ...report.passes.map((p) => p.counts));
  const c = opCounts(m);
  expect(counts[RULE]).toBe(1);
  expect(c.FusedLinearCrossEntropy).toBe(1);
  for (const op of GONE) expect(c[op] ?? 0, op).toBe(0);
  expect(report.explanations.filter((e) => e.rule === RULE)).toEqual([]);
  return { report, counts };
}

/** A copy of `m` with the portable bodies for `target`. */
function withBodies(m: Model, target: Target): Uint8Array {
  const copy = loadBytes(saveBytes(m));
  ensureFunctions(copy, target);
  return saveBytes(copy);
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
/** onnxruntime-node's WebGPU EP needs a Vulkan driver: SwiftShader from Debian's chromium where there is no GPU. */
const webgpuUsable = fs.existsSync(SWIFTSHADER_ICD) || !!process.env.VK_ICD_FILENAMES;

beforeAll(() => {
  // Before the first WebGPU session: SwiftShader's ICD, and a Vulkan loader (chromium's where the system has none).
  useSwiftShaderIfPresent();
  preloadVulkanLoader();
  ortw.env.wasm.numThreads = 1;
});

interface Case {
  name: string;
  model: () => Model;
  fx: FixtureJson;
  /** Rows of the fixture batch to run (the op23 export runs only batch 1 in ORT 1.30, models/fixtures/README.md). */
  rows: number;
  /** torch's loss, where the inputs are the fixture's. */
  torch?: number;
}

const CASES: Case[] = [
  ...['qwen2-tiny', 'qwen2-tiny-untied', 'qwen2-tiny-nll', 'qwen2-tiny-op23'].map((stem) => {
    const fx = fixtureJson(stem);
    const op23 = stem.endsWith('op23');
    return { name: stem, model: () => loadFile(`${DIR}${stem}.onnx`), fx, rows: op23 ? 1 : 2, torch: op23 ? undefined : fx.loss };
  }),
  { name: 'builder tiny (sce)', model: () => buildQwen2(TINY, { seed: 5 }), fx: fixtureJson('qwen2-tiny'), rows: 2 },
  { name: 'builder tiny (nll)', model: () => buildQwen2(TINY, { seed: 6, loss: 'nll' }), fx: fixtureJson('qwen2-tiny'), rows: 2 },
];

describe('fuse-linear-cross-entropy on real exports and builder graphs', () => {
  for (const c of CASES)
    it(`${c.name}: one fused loss; same loss on node CPU, web wasm and node WebGPU`, async () => {
      const m = c.model();
      const want = await loss(m, c.fx, c.rows);
      if (c.torch !== undefined) expect(rel(want, c.torch)).toBeLessThan(1e-5);
      optimizeAndCount(m);
      expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss', 'logits']); // inference use keeps the logits

      const cpu = withBodies(m, 'cpu');
      const got = { cpu: await loss(cpu, c.fx, c.rows), wasm: await loss(cpu, c.fx, c.rows, 'web-wasm') } as Record<string, number>;
      expect(rel(got.cpu, want)).toBeLessThan(1e-5);
      expect(rel(got.wasm, want)).toBeLessThan(1e-5);
      if (webgpuUsable) {
        got.webgpu = await loss(withBodies(m, 'webgpu'), c.fx, c.rows, 'node-webgpu');
        expect(rel(got.webgpu, want)).toBeLessThan(1e-4);
      }
      console.log(`${c.name}: original ${want} · ${Object.entries(got).map(([k, x]) => `${k} ${x} (rel ${rel(x, want).toExponential(1)})`).join(' · ')}`);
    });

  it('training: drop-logits removes the logits output and the lm_head MatMul (qwen2-tiny)', async () => {
    const fx = fixtureJson('qwen2-tiny');
    const m = loadFile(`${DIR}qwen2-tiny.onnx`);
    const { counts } = optimizeAndCount(m, { training: true });
    expect(counts['drop-logits']).toBe(1);
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss']);
    expect(m.graph.nodes.filter((n) => n.opType === 'MatMul' && n.inputs[1]?.producer?.inputs[0]?.name === 'lm_head.weight')).toEqual([]);
    expect(rel(await loss(withBodies(m, 'cpu'), fx, 2), fx.loss)).toBeLessThan(1e-5);
  });
});


describe('fuse-linear-cross-entropy on the builder’s 0.5B graph (structure only)', () => {
  it('one fused loss over the tied [151936, 896] weight; training drops the logits', () => {
    const m = buildQwen2Structure(QWEN2_0_5B);
    optimizeAndCount(m);
    const fused = m.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropy')!;
    expect(fused.inputs[1]!.name).toBe('lm_head.weight');
    expect(fused.inputs[1]!.tensorType?.shape).toEqual([151936, 896]);
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss', 'logits']);
    const t = buildQwen2Structure(QWEN2_0_5B);
    const { counts } = optimizeAndCount(t, { training: true });
    expect(counts['drop-logits']).toBe(1);
    expect(t.graph.outputs.map((o) => o.name)).toEqual(['loss']);
  });
});

describe('ortfuse optimize: --target, --drop-logits, explain', () => {
  it('attaches the bodies for the target; --drop-logits leaves only the loss; a second run changes nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-lce-'));
    try {
      let out = '';
      const io = { stdout: (t: string) => void (out += t), stderr: (t: string) => void (out += t), cwd: dir };
      expect(await runCli(['optimize', `${DIR}qwen2-tiny.onnx`, '-o', 'a.onnx', '--target', 'webgpu', '--drop-logits', '--explain'], io)).toBe(0);
      expect(out).toMatch(/fuse-linear-cross-entropy=1/);
      expect(out).toMatch(/drop-logits=1/);
      expect(out).not.toMatch(/fuse-linear-cross-entropy: best partial match/);
      const m = loadFile(path.join(dir, 'a.onnx'));
      expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss']);
      const body = m.functions.find((f) => f.name === 'FusedLinearCrossEntropy')!;
      expect(String(body.extra.doc_string)).toMatch(/target=webgpu/);
      expect(rel(await loss(m, fixtureJson('qwen2-tiny'), 2, 'web-wasm'), fixtureJson('qwen2-tiny').loss)).toBeLessThan(1e-5);
      out = '';
      expect(await runCli(['optimize', 'a.onnx', '-o', 'b.onnx', '--target', 'webgpu', '--json', '-'], io)).toBe(0);
      const again = JSON.parse(out) as { passes: { modified: boolean; counts: object }[] };
      expect(again.passes.filter((p) => p.modified || Object.keys(p.counts).length)).toEqual([]);
      expect(Buffer.from(fs.readFileSync(path.join(dir, 'b.onnx'))).equals(fs.readFileSync(path.join(dir, 'a.onnx')))).toBe(true);
      expect(await runCli(['optimize', 'a.onnx', '--target', 'cuda'], io)).not.toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
