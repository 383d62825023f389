import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { cloneModel } from '../src/autodiff/clone.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { checkModel } from '../src/ir/checker.js';
import type { Model, Value } from '../src/ir/graph.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { opCounts, randomFeeds, rng, runOrt } from '../src/rewrite/testing.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { gpuEnv, relL2 } from '../test/webgpu-helpers.js';
import { lowerToOnnx23Pass, raiseOpsetTo23, whyNotLowered } from './lower-to-onnx-23.js';

const F = DataType.FLOAT;
const env = await gpuEnv();

interface Shape { b: number; h: number; s: number; d: number; cosBatch: number }

/** Seeded random shapes: batch 1-3, heads 1-4, seq 1-9, even head dim 2-32, cos batch 1 or B. */
function shapes(count: number): Shape[] {
  const r = rng(23);
  const pick = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  return Array.from({ length: count }, (_, i) => {
    const b = pick(1, 3);
    return { b, h: pick(1, 4), s: pick(1, 9), d: 2 * pick(1, 16), cosBatch: i % 2 ? b : 1 };
  });
}

type Tables = (b: GraphBuilder, freqs: Value) => [Value, Value];
const ints = (b: GraphBuilder, v: number[]) => b.constant(v, { dims: [v.length], dtype: DataType.INT64 });
/** HF's tables: Unsqueeze(Cos/Sin(Concat(f, f)), 1) -> [B|1, 1, S, D]. */
const hfTables: Tables = (b, f) => {
  const emb = b.op.Concat(f, f, { axis: -1 });
  return [b.op.Unsqueeze(b.op.Cos(emb), ints(b, [1])), b.op.Unsqueeze(b.op.Sin(emb), ints(b, [1]))];
};

/**
 * A Qwen2-like block with fused nodes (opset 20): y = RMSNorm(h); q, k = RoPE(y as heads); and
 * RMSNormGrad(dy, h, w), whose body (Flatten) must still run after the opset is raised.
 */
function block(sh: Shape, tables: Tables = hfTables, stash = F): Model {
  const m = createModel({ opset: 20, opsets: { [ORTFUSE_DOMAIN]: 1 } });
  const b = new GraphBuilder(m.graph);
  const hid = sh.h * sh.d;
  const h = b.input('h', F, [sh.b, sh.s, hid]);
  const w = b.input('w', F, [hid]);
  const dy = b.input('dy', F, [sh.b, sh.s, hid]);
  const f = b.input('freqs', F, [sh.cosBatch, sh.s, sh.d / 2]);
  const y = b.op.call('RMSNorm', [h, w], { epsilon: 1e-6, stash_type: stash }, { domain: ORTFUSE_DOMAIN, name: 'norm' })[0];
  const heads = b.op.Transpose(b.op.Reshape(y, ints(b, [0, 0, sh.h, sh.d])), { perm: [0, 2, 1, 3] });
  const [cos, sin] = tables(b, f);
  const q = b.op.call('RoPE', [heads, cos, sin], {}, { domain: ORTFUSE_DOMAIN, name: 'rope_q' })[0];
  const k = b.op.call('RoPE', [b.op.Neg(heads), cos, sin], {}, { domain: ORTFUSE_DOMAIN, name: 'rope_k' })[0];
  const [dx, dw] = b.op.call('RMSNormGrad', [dy, h, w], { epsilon: 1e-6, stash_type: stash }, { domain: ORTFUSE_DOMAIN, outputs: 2, name: 'norm_grad' });
  for (const [v, n] of [[y, 'y'], [q, 'q'], [k, 'k'], [dx, 'dx'], [dw, 'dw']] as const) b.output(v, n);
  return m;
}

/** The model with `target` bodies, and its lowered copy. */
function pair(m: Model, target: 'cpu' | 'webgpu') {
  ensureFunctions(m, target);
  const lowered = cloneModel(m);
  const result = lowerToOnnx23Pass().run(lowered, newContext());
  return { lowered, result };
}

async function runWeb(m: Model, feeds: Record<string, ort.Tensor>): Promise<Float32Array[]> {
  const { ort: web } = await nodeOrtWeb();
  const s = await web.InferenceSession.create(saveBytes(m), { executionProviders: ['webgpu'], graphOptimizationLevel: 'disabled', logSeverityLevel: 3 } as never);
  try {
    const wf = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new web.Tensor('float32', t.data as Float32Array, t.dims as number[])]));
    const out = await s.run(wf);
    return Promise.all(s.outputNames.map(async (n) => (await out[n].getData()) as Float32Array));
  } finally {
    await s.release();
  }
}

const data = (ts: ort.Tensor[]) => ts.map((t) => t.data as Float32Array);

describe('lower-to-onnx-23', () => {
  it('lowers RMSNorm and both RoPEs (caches built once), raises model and function opsets to 23; CPU numerics as the bodies (rel L2 < 1e-5)', async () => {
    let worst = 0;
    for (const [i, sh] of shapes(6).entries()) {
      const m = block(sh);
      const { lowered, result } = pair(m, 'cpu');
      expect(result.counts).toEqual({ 'lower-to-onnx-23': 3 });
      const ops = opCounts(lowered);
      expect(ops.RMSNormalization).toBe(1);
      expect(ops.RotaryEmbedding).toBe(2);
      expect(ops.RMSNorm ?? 0).toBe(0);
      expect(ops.RoPE ?? 0).toBe(0);
      expect(ops.RMSNormGrad).toBe(1); // the backward stays a body
      expect(ops.Squeeze).toBe(2); // one cos and one sin cache, shared by q and k
      expect(ops.Expand ?? 0).toBe(sh.cosBatch === sh.b ? 0 : 2);
      expect(checkModel(lowered)).toEqual([]);
      expect(lowered.opset('')).toBe(23);
      for (const f of lowered.functions) expect(f.opsetImports.get(''), f.name).toBe(23);
      expect(m.opset('')).toBe(20); // the input model is not touched
      const feeds = randomFeeds(m, 100 + i);
      const want = data(await runOrt(m, feeds));
      const got = data(await runOrt(lowered, feeds));
      for (const [j, w] of want.entries()) {
        const e = relL2(got[j], w);
        worst = Math.max(worst, e);
        expect(e, `${JSON.stringify(sh)} output ${j}`).toBeLessThan(1e-5);
      }
    }
    console.log(`lower-to-onnx-23 on onnxruntime-node CPU: worst rel L2 ${worst.toExponential(2)} over 6 shapes`);
  });

  it('symbolic batch and sequence: caches from the shapes at run time', async () => {
    const m = block({ b: 2, h: 2, s: 5, d: 8, cosBatch: 1 });
    for (const v of m.graph.inputs) {
      const t = v.tensorType!;
      if (v.name === 'h' || v.name === 'dy') t.shape = ['B', 'S', t.shape![2]];
      if (v.name === 'freqs') t.shape = [1, 'S', t.shape![2]];
    }
    const { lowered, result } = pair(m, 'cpu');
    expect(result.counts).toEqual({ 'lower-to-onnx-23': 3 });
    expect(opCounts(lowered).Shape).toBeGreaterThan(0);
    expect(opCounts(lowered).Expand).toBe(2);
    const feeds = randomFeeds(m, 7, { B: 3, S: 6 });
    const want = data(await runOrt(m, feeds));
    const got = data(await runOrt(lowered, feeds));
    for (const [j, w] of want.entries()) expect(relL2(got[j], w)).toBeLessThan(1e-5);
  });

  it('near misses stay fused ops with the reason: unequal cos/sin halves, a Transpose moving the last axis, stash_type DOUBLE', async () => {
    const sh: Shape = { b: 2, h: 2, s: 4, d: 8, cosBatch: 1 };
    // Cos/Sin of Concat(f, Neg(f)): halves differ.
    const notRepeated: Tables = (b, f) => {
      const emb = b.op.Concat(f, b.op.Neg(f), { axis: -1 });
      return [b.op.Unsqueeze(b.op.Cos(emb), ints(b, [1])), b.op.Unsqueeze(b.op.Sin(emb), ints(b, [1]))];
    };
    // Concat(f, f) then a Transpose swapping the last two axes (S = D here) before the Unsqueeze.
    const swapped: Tables = (b, f) => {
      const emb = b.op.Transpose(b.op.Concat(f, f, { axis: -1 }), { perm: [0, 2, 1] });
      return [b.op.Unsqueeze(b.op.Cos(emb), ints(b, [1])), b.op.Unsqueeze(b.op.Sin(emb), ints(b, [1]))];
    };
    for (const [tables, shape] of [[notRepeated, sh], [swapped, { ...sh, s: 8 }]] as const) {
      const m = block(shape, tables);
      const { lowered, result } = pair(m, 'cpu');
      expect(result.counts).toEqual({ 'lower-to-onnx-23': 1 }); // the RMSNorm only
      const rope = lowered.graph.nodes.filter((n) => n.opType === 'RoPE');
      expect(rope).toHaveLength(2);
      expect(whyNotLowered(rope[0])).toMatch(/is not provably Cos\/Sin of Concat\(f, f\) over the last axis/);
      const feeds = randomFeeds(m, 3);
      const want = data(await runOrt(m, feeds));
      const got = data(await runOrt(lowered, feeds));
      for (const [j, w] of want.entries()) expect(relL2(got[j], w)).toBeLessThan(1e-5);
    }
    const f64 = block(sh, hfTables, DataType.DOUBLE);
    const norm = f64.graph.nodes.find((n) => n.opType === 'RMSNorm')!;
    expect(whyNotLowered(norm)).toBe('stash_type is not FLOAT');
    const { lowered } = pair(f64, 'cpu');
    expect(opCounts(lowered).RMSNorm).toBe(1);
    expect(opCounts(lowered).RotaryEmbedding).toBe(2);
  });

  it('nothing to lower: the model keeps its opset', () => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    b.output(b.op.Relu(b.input('x', F, [2])), 'y');
    expect(lowerToOnnx23Pass().run(m, newContext())).toEqual({ modified: false, counts: {} });
    expect(m.opset('')).toBe(20);
  });

  it('refuses to raise the opset below 20 or over an op whose meaning changes by 23, naming it', () => {
    const old = createModel({ opset: 18 });
    expect(() => raiseOpsetTo23(old)).toThrow(/imports opset 18; raising it to 23 is checked only from opset 20/);
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [1, 4, 3]);
    b.output(b.op.call('GroupNormalization', [x, b.input('s', F, [2]), b.input('c', F, [2])], { num_groups: 2 }, { name: 'gn' })[0], 'y');
    expect(() => raiseOpsetTo23(m)).toThrow(/GroupNormalization\) changes meaning in opset 21/);
    expect(m.opset('')).toBe(20);
  });
});

describe.skipIf(!env.ctx)('lower-to-onnx-23 on onnxruntime-web WebGPU (dawn.node)', () => {
  it('the lowered ops on WebGPU give the CPU bodies\' results (rel L2 < 1e-5)', async () => {
    let worst = 0;
    let bodyWorst = 0;
    for (const [i, sh] of shapes(6).entries()) {
      const m = block(sh);
      const { lowered, result } = pair(m, 'webgpu');
      expect(result.counts).toEqual({ 'lower-to-onnx-23': 3 });
      const feeds = randomFeeds(m, 200 + i);
      const cpu = data(await runOrt(m, feeds));
      const body = await runWeb(m, feeds);
      const got = await runWeb(lowered, feeds);
      for (const [j, w] of body.entries()) {
        const e = relL2(got[j], cpu[j]);
        worst = Math.max(worst, e);
        bodyWorst = Math.max(bodyWorst, relL2(w, cpu[j]));
        expect(e, `${JSON.stringify(sh)} output ${j} vs the CPU body`).toBeLessThan(1e-5);
        // The WebGPU body itself is further from the CPU (k = RoPE(Neg(x)): ~1e-4 on SwiftShader).
        expect(relL2(got[j], w), `${JSON.stringify(sh)} output ${j} vs the WebGPU body`).toBeLessThan(1e-3);
      }
    }
    console.log(`lower-to-onnx-23 on ORT-web WebGPU (SwiftShader): lowered vs CPU body worst rel L2 ${worst.toExponential(2)}; WebGPU body vs CPU body ${bodyWorst.toExponential(2)} (6 shapes)`);
  });
});
