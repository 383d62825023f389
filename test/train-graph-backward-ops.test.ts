/**
 * The backward fused ops in the tiny Qwen2's training graph (default pipeline): one RMSNormGrad per
 * RMSNorm (2L+1), one SwiGLUGrad per SwiGLU (L), one RoPEGrad per RoPE (2L), each reading its
 * forward node's inputs, with their bodies attached for the target; no stock-op expansion of these
 * backwards remains. A frozen norm weight still gets one node (dweight unused). One step on
 * onnxruntime-node agrees with the unfused graph.
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { buildTrainingGraph, GRAD_PREFIX } from '../src/autodiff/index.js';
import type { Model, Node } from '../src/ir/index.js';
import { saveBytes } from '../src/onnx/io.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { rng } from '../src/random.js';
import { prepareTraining } from '../src/runtime/session.js';

const L = TINY.num_hidden_layers;
const PAIRS = { RMSNorm: 'RMSNormGrad', SwiGLU: 'SwiGLUGrad', RoPE: 'RoPEGrad' } as const;

const fusedNodes = (m: Model, op: string): Node[] => m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse' && n.opType === op);
const opCount = (m: Model, op: string): number => m.graph.nodes.filter((n) => n.opType === op).length;

function fusedForward(): Model {
  const m = buildQwen2(TINY);
  runPipeline(m, defaultPipeline(), { options: { training: true } });
  return m;
}

describe('backward fused ops in the tiny Qwen2 training graph', () => {
  for (const target of ['cpu', 'webgpu'] as const)
    it(`${target}: 2L+1 RMSNormGrad, L SwiGLUGrad, 2L RoPEGrad, each paired with its forward node, bodies attached`, () => {
      const { train } = prepareTraining(buildQwen2(TINY), { fuse: true, target });
      const want = { RMSNormGrad: 2 * L + 1, SwiGLUGrad: L, RoPEGrad: 2 * L };
      for (const [op, n] of Object.entries(want)) expect(fusedNodes(train, op), op).toHaveLength(n);
      for (const [fwd, bwd] of Object.entries(PAIRS)) {
        const forward = fusedNodes(train, fwd);
        // RMSNormGrad/SwiGLUGrad(dy, <forward inputs>); RoPEGrad(dy, cos, sin)
        const key = (ins: unknown[]) => ins.map((v) => (v as { name: string }).name).join('|');
        const saved = new Set(forward.map((f) => key(fwd === 'RoPE' ? f.inputs.slice(1) : f.inputs)));
        const backward = fusedNodes(train, bwd);
        for (const b of backward) expect(saved.has(key(b.inputs.slice(1))), `${b.label} reads a ${fwd}'s inputs`).toBe(true);
        if (fwd !== 'RoPE') expect(new Set(backward.map((b) => key(b.inputs.slice(1)))).size, `one ${bwd} per ${fwd}`).toBe(backward.length);
        // every output is used: all weights train
        for (const b of backward) for (const o of b.outputs) expect(o.uses().length > 0 || o.isGraphOutput(), `${b.label} output ${o.name}`).toBe(true);
      }
      // The stock expansions are gone (the forward ops are fused too).
      for (const op of ['Sigmoid', 'ReduceMean', 'Reciprocal', 'Sqrt', 'Neg']) expect(opCount(train, op), op).toBe(0);
      for (const op of Object.values(PAIRS)) {
        const fn = train.functions.find((f) => f.name === op);
        expect(fn?.extra.doc_string, op).toContain(`target=${target};`);
      }
    });

  it('frozen norm weights: still one RMSNormGrad per RMSNorm, dweight unused', () => {
    const m = fusedForward();
    const norms = fusedNodes(m, 'RMSNorm').map((n) => n.inputs[1]!.name);
    expect(norms).toHaveLength(2 * L + 1);
    const train = buildTrainingGraph(m, { ops: FUSED_OPS, frozen: norms });
    const grads = fusedNodes(train, 'RMSNormGrad');
    expect(grads).toHaveLength(2 * L + 1);
    for (const g of grads) {
      expect(g.outputs[0].uses().length).toBeGreaterThan(0);
      expect(g.outputs[1].uses()).toHaveLength(0);
    }
    expect(train.graph.outputs.map((v) => v.name).filter((n) => n.includes('norm'))).toEqual([]);
  });

  it('buildTrainingGraph attaches the backward bodies when the forward model carries bodies (same target), not otherwise', () => {
    const bare = buildTrainingGraph(fusedForward(), { ops: FUSED_OPS });
    expect(bare.functions).toHaveLength(0);
    const m = fusedForward();
    ensureFunctions(m, 'webgpu');
    const train = buildTrainingGraph(m, { ops: FUSED_OPS });
    for (const op of Object.values(PAIRS)) expect(train.functions.find((f) => f.name === op)?.extra.doc_string, op).toContain('target=webgpu;');
  });

  it('one step on onnxruntime-node: loss and every gradient agree with the unfused graph', async () => {
    const run = async (fuse: boolean) => {
      const { train, initial, vocab, parameters } = prepareTraining(buildQwen2(TINY), { fuse });
      const r = rng(11);
      const [B, S] = [3, 7];
      const ids = BigInt64Array.from({ length: B * S }, () => BigInt(Math.floor(r() * vocab)));
      const labels = BigInt64Array.from({ length: B * S }, (_, i) => (i % 5 === 3 ? -100n : BigInt(Math.floor(r() * vocab))));
      const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [B, S]), labels: new ort.Tensor('int64', labels, [B, S]) };
      for (const p of parameters) feeds[p] = new ort.Tensor('float32', initial.get(p)!, train.graph.inputs.find((v) => v.name === p)!.tensorType!.shape as number[]);
      const s = await ort.InferenceSession.create(saveBytes(train), { graphOptimizationLevel: 'disabled' });
      try {
        return { out: await s.run(feeds), parameters };
      } finally {
        await s.release();
      }
    };
    const fused = await run(true);
    const plain = await run(false);
    expect(fused.parameters.slice().sort()).toEqual(plain.parameters.slice().sort());
    expect(Math.abs((fused.out.loss.data[0] as number) - (plain.out.loss.data[0] as number))).toBeLessThan(1e-5);
    for (const p of fused.parameters) {
      const a = fused.out[GRAD_PREFIX + p].data as Float32Array;
      const b = plain.out[GRAD_PREFIX + p].data as Float32Array;
      let num = 0;
      let den = 0;
      for (let i = 0; i < b.length; i++) {
        num += (a[i] - b[i]) ** 2;
        den += b[i] ** 2;
      }
      expect(den, p).toBeGreaterThan(0);
      expect(Math.sqrt(num / den), p).toBeLessThan(1e-4);
    }
  });
});
