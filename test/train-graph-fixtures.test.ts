/**
 * Training graphs of the real torch exports (models/fixtures/qwen2-tiny*.onnx, torch 2.11 dynamo)
 * against torch's loss and every parameter's gradient from the fixture's .json, in
 * onnxruntime-node (fp32: loss relative error < 1e-5, gradient relative L2 error < 1e-3), unfused
 * and fused (the default pipeline with training: RMSNorm, SwiGLU, RoPE, linear-CE with in-forward
 * gradients, drop-logits; 'cpu' bodies). The graphs contain no com.microsoft op (the fused ones only
 * ai.ortfuse ops whose bodies they carry), and load and run in onnxruntime-web (wasm), the fused
 * ones also with the 'webgpu' bodies (unrolled linear-CE, no Loop).
 * qwen2-tiny-op23 is not here: ORT 1.30 cannot run its forward pass (RotaryEmbedding-23 rejects
 * the exported cos/sin cache shapes; see the fixture's ort_error).
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import * as ortw from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildTrainingGraph, GRAD_PREFIX, trainingSignature } from '../src/autodiff/index.js';
import type { Model } from '../src/ir/index.js';
import { loadFile, saveBytes } from '../src/onnx/io.js';
import { isRecomputeNode } from '../src/autodiff/recompute.js';
import { prepareTraining } from '../src/runtime/session.js';
import { relL2 } from './numerics.js';

const DIR = new URL('../models/fixtures/', import.meta.url).pathname;
const FIXTURES = ['qwen2-tiny', 'qwen2-tiny-untied', 'qwen2-tiny-nll'];
const present = FIXTURES.filter((f) => fs.existsSync(`${DIR}${f}.onnx`));

interface Fixture {
  loss: number;
  inputs: { input_ids: number[][]; labels: number[][] };
  grads: Record<string, { shape: number[]; data: unknown }>;
  param_to_initializer: Record<string, string>;
}

/** `params`: the training graph's parameter names; `onnx(p)`: the initializer of `model` holding p's value. */
function feeds(T: typeof ort | typeof ortw, model: Model, fx: Fixture, params: string[], onnx: (p: string) => string): Record<string, ort.Tensor> {
  const dims = [fx.inputs.input_ids.length, fx.inputs.input_ids[0].length];
  const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
  const f: Record<string, any> = {
    input_ids: new T.Tensor('int64', i64(fx.inputs.input_ids), dims),
    labels: new T.Tensor('int64', i64(fx.inputs.labels), dims),
  };
  for (const v of model.graph.initializers)
    for (const p of params) if (onnx(p) === v.name) f[p] = new T.Tensor('float32', v.initializer!.toArray() as Float32Array, v.initializer!.dims);
  return f;
}


describe.skipIf(present.length === 0)('training graphs of the torch fixtures', () => {
  beforeAll(() => {
    ortw.env.wasm.numThreads = 1;
  });

  const modes = present.flatMap((name) => [[name, 'unfused'], [name, 'fused']] as const);
  describe.each(modes)('%s %s', (name, mode) => {
    const model = loadFile(`${DIR}${name}.onnx`);
    const fx = JSON.parse(fs.readFileSync(`${DIR}${name}.json`, 'utf8')) as Fixture;
    const fused = mode === 'fused';
    // prepareTraining names parameters by their torch names (src/params: the tied embedding is
    // model.embed_tokens.weight, stored by the exporter as lm_head.weight); buildTrainingGraph alone
    // keeps the initializers' names. Gradients in the fixture are keyed by initializer name.
    const torchParams = (fused ? Object.keys(fx.param_to_initializer) : Object.keys(fx.grads)).sort();
    const onnx = (p: string) => (fused ? fx.param_to_initializer[p] : p);
    const grad = (p: string) => (fx.grads[onnx(p)].data as number[]).flat(Infinity as 1) as number[];
    const train = fused ? prepareTraining(loadFile(`${DIR}${name}.onnx`), { fuse: true }).train : buildTrainingGraph(model, { ops: FUSED_OPS });
    const bytes = saveBytes(train);

    it('trains exactly torch\'s parameters (default selection) and uses only stock ops (+ ai.ortfuse with bodies)', () => {
      expect(trainingSignature(train).parameters.sort()).toEqual(torchParams);
      const ops = new Map<string, number>();
      const clones = new Map<string, number>(); // forward values recomputed in the backward (src/autodiff/recompute.ts)
      for (const n of train.graph.nodes) {
        const m = isRecomputeNode(n) ? clones : ops;
        m.set(`${n.domain || 'ai.onnx'}::${n.opType}`, (m.get(`${n.domain || 'ai.onnx'}::${n.opType}`) ?? 0) + 1);
      }
      const domains = new Set([...ops.keys()].map((k) => k.split('::')[0]));
      expect([...domains].sort()).toEqual(fused ? ['ai.onnx', 'ai.ortfuse'] : ['ai.onnx']);
      expect(train.opsetImports.has('com.microsoft')).toBe(false);
      for (const f of train.functions) for (const n of f.body.allNodes()) expect(n.domain === '' || n.domain === 'ai.onnx', `${f.name}: ${n.opType}`).toBe(true);
      if (fused) {
        // 2 layers: 2 RMSNorm each + the final one, q and k RoPE, one SwiGLU, each with one backward
        // op; the loss with its gradients
        expect(Object.fromEntries([...ops].filter(([k]) => k.startsWith('ai.ortfuse')))).toEqual({
          'ai.ortfuse::RMSNorm': 5, 'ai.ortfuse::RoPE': 4, 'ai.ortfuse::SwiGLU': 2, 'ai.ortfuse::FusedLinearCrossEntropyWithGrad': 1,
          'ai.ortfuse::RMSNormGrad': 5, 'ai.ortfuse::RoPEGrad': 4, 'ai.ortfuse::SwiGLUGrad': 2,
        });
        // Recomputed for the weight gradients: the 4 per-layer norms' outputs and both SwiGLU outputs.
        expect(clones.get('ai.ortfuse::RMSNorm')).toBe(4);
        expect(clones.get('ai.ortfuse::SwiGLU')).toBe(2);
        expect(clones.get('ai.onnx::Softmax')).toBe(2);
        expect(train.functions.map((f) => f.name).sort()).toEqual(
          ['FusedLinearCrossEntropyWithGrad', 'RMSNorm', 'RMSNormGrad', 'RoPE', 'RoPEGrad', 'SwiGLU', 'SwiGLUGrad']);
        expect(ops.has('ai.onnx::SoftmaxCrossEntropyLoss') || ops.has('ai.onnx::NegativeLogLikelihoodLoss')).toBe(false);
      }
    });

    it('matches torch\'s loss and every parameter gradient (onnxruntime-node)', async () => {
      const s = await ort.InferenceSession.create(bytes);
      const out = await s.run(feeds(ort, model, fx, torchParams, onnx));
      const loss = Number(out.loss.data[0]);
      expect(Math.abs(loss - fx.loss) / Math.abs(fx.loss)).toBeLessThan(1e-5);
      for (const p of torchParams) {
        const want = grad(p);
        const got = out[GRAD_PREFIX + p].data as Float32Array;
        expect(got.length, p).toBe(want.length);
        expect(relL2(got, want), p).toBeLessThan(1e-3);
      }
    });

    it('loads and runs in onnxruntime-web (wasm)', async () => {
      const s = await ortw.InferenceSession.create(bytes);
      const out = await s.run(feeds(ortw, model, fx, torchParams, onnx) as any);
      expect(Math.abs(Number(out.loss.data[0]) - fx.loss) / fx.loss).toBeLessThan(1e-5);
      const p = torchParams[0];
      expect(relL2(out[GRAD_PREFIX + p].data as Float32Array, grad(p))).toBeLessThan(1e-3);
    });

    it.runIf(fused)("with the 'webgpu' bodies (no Loop) loads and runs in onnxruntime-web (wasm)", async () => {
      const web = prepareTraining(loadFile(`${DIR}${name}.onnx`), { fuse: true, target: 'webgpu' }).train;
      for (const f of web.functions) expect([...f.body.allNodes()].some((n) => n.opType === 'Loop'), f.name).toBe(false);
      const s = await ortw.InferenceSession.create(saveBytes(web));
      const out = await s.run(feeds(ortw, model, fx, torchParams, onnx) as any);
      expect(Math.abs(Number(out.loss.data[0]) - fx.loss) / fx.loss).toBeLessThan(1e-5);
      for (const p of torchParams)
        expect(relL2(out[GRAD_PREFIX + p].data as Float32Array, grad(p)), p).toBeLessThan(1e-3);
    });
  });
});
