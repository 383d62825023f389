/**
 * Issue 3, acceptance 2 (onnxruntime-web WebGPU): each torch fixture, optimized by the default
 * pipeline with the fused ops' 'webgpu' bodies, runs on onnxruntime-web's WebGPU EP inside Node
 * (dawn.node; SwiftShader without a GPU) and gives the original's loss (onnxruntime-node CPU on
 * the unfused export) within relative error 1e-4.
 */
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import { loadFile, saveBytes } from '../src/onnx/io.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();
const DIR = new URL('../models/fixtures/', import.meta.url).pathname;

/** Fixture stem and the batch rows ORT can run (the op23 export's own RotaryEmbedding needs batch 1). */
const FIXTURES: [string, number][] = [['qwen2-tiny', 2], ['qwen2-tiny-untied', 2], ['qwen2-tiny-nll', 2], ['qwen2-tiny-op23', 1]];

describe.skipIf(!env.ctx)('optimized fixtures on onnxruntime-web WebGPU (Node, dawn.node)', () => {
  for (const [stem, rows] of FIXTURES)
    it(`${stem}: loss within 1e-4 of the unfused original`, async () => {
      const fx = JSON.parse(fs.readFileSync(`${DIR}${stem}.json`, 'utf8'));
      const ids: number[][] = fx.inputs.input_ids.slice(0, rows);
      const labels: number[][] = fx.inputs.labels.slice(0, rows);
      const original = await ort.InferenceSession.create(`${DIR}${stem}.onnx`, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
      const tn = (r: number[][]) => new ort.Tensor('int64', BigInt64Array.from(r.flat(), BigInt), [r.length, r[0].length]);
      const want = Number((await original.run({ input_ids: tn(ids), labels: tn(labels) })).loss.data[0]);

      const m = loadFile(`${DIR}${stem}.onnx`);
      const report = runPipeline(m, defaultPipeline());
      expect(report.passes.some((p) => p.counts['fuse-linear-cross-entropy'] === 1)).toBe(true);
      ensureFunctions(m, 'webgpu');
      const { ort: web } = await nodeOrtWeb();
      const s = await web.InferenceSession.create(saveBytes(m), { executionProviders: ['webgpu'], logSeverityLevel: 3 });
      const tw = (r: number[][]) => new web.Tensor('int64', BigInt64Array.from(r.flat(), BigInt), [r.length, r[0].length]);
      const out = await s.run({ input_ids: tw(ids), labels: tw(labels) });
      const got = Number((await out.loss.getData())[0]);
      await s.release();
      expect(Math.abs(got - want) / Math.abs(want)).toBeLessThan(1e-4);
    });
});
