import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createModel, GraphBuilder, checkModel, Graph } from '../../src/ir/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { loadBytes, saveBytes } from '../../src/onnx/io.js';
import { Body } from '../../src/fused/body.js';
import { ensureFunction } from '../functions.js';
import { ORTFUSE_DOMAIN, validateNode, type Target } from '../../src/fused/types.js';
import { f32, finiteDiff, fusedModel, i64, randn, relErr, rng, runOrt } from '../testing.js';
import { fusedLinearCrossEntropy } from './function.js';
import { ligerChunk } from './chunks.js';
import { linearCrossEntropyGradRef, linearCrossEntropyRef, type LinearCEOptions } from './reference.js';
import { ligerChunkSize, type Reduction } from './schema.js';

const F = DataType.FLOAT;

interface Case {
  n: number; h: number; v: number; seed: number; bias?: boolean; ignoreEvery?: number;
  reduction?: Reduction; smoothing?: number; ignoreIndex?: number; chunkSize?: number; scale?: number;
}

function data(c: Case) {
  const r = rng(c.seed);
  const hidden = randn(r, c.n * c.h, c.scale ?? 1);
  const weight = randn(r, c.v * c.h, 0.3);
  const bias = c.bias ? randn(r, c.v) : undefined;
  const ignore = c.ignoreIndex ?? -100;
  const labels = Array.from({ length: c.n }, (_, i) => (c.ignoreEvery && i % c.ignoreEvery === 1 ? ignore : Math.floor(r() * c.v)));
  return { hidden, weight, bias, labels };
}

function model(c: Case, target: Target, opts: { opset?: number; irVersion?: number; numChunks?: number } = {}) {
  const red = c.reduction ?? 'mean';
  return fusedModel(fusedLinearCrossEntropy, [
    { name: 'hidden', elem: F, shape: ['N', c.h] }, { name: 'weight', elem: F, shape: [c.v, c.h] },
    c.bias ? { name: 'bias', elem: F, shape: [c.v] } : null, { name: 'labels', elem: DataType.INT64, shape: ['N'] },
  ], {
    reduction: c.reduction, label_smoothing: c.smoothing === undefined ? undefined : { float: c.smoothing },
    ignore_index: c.ignoreIndex, chunk_size: c.chunkSize, num_chunks: opts.numChunks,
  }, target, { opset: opts.opset, irVersion: opts.irVersion, output: { name: 'loss', elem: F, shape: red === 'none' ? ['N'] : [] } });
}

async function compare(c: Case, target: Target, opts: { opset?: number; irVersion?: number; numChunks?: number } = {}) {
  const d = data(c);
  const feeds: Record<string, ort.Tensor> = { hidden: f32(d.hidden, [c.n, c.h]), weight: f32(d.weight, [c.v, c.h]), labels: i64(d.labels, [c.n]) };
  if (d.bias) feeds.bias = f32(d.bias, [c.v]);
  const out = await runOrt(model(c, target, opts), feeds);
  const o: LinearCEOptions = { reduction: c.reduction, labelSmoothing: c.smoothing, ignoreIndex: c.ignoreIndex };
  const ref = linearCrossEntropyRef({ ...c, ...d }, o);
  return { got: out.loss, ref };
}

const TARGETS: Target[] = ['cpu', 'webgpu'];

describe('FusedLinearCrossEntropy bodies vs float64 reference', () => {
  for (const target of TARGETS)
    for (const reduction of ['mean', 'sum', 'none'] as const)
      for (const smoothing of [0, 0.1])
        it(`${target} reduction=${reduction} label_smoothing=${smoothing}`, async () => {
          // N = 37 is not a multiple of the chunk (8 explicit on cpu; ceil(37/8) = 5 on webgpu).
          for (const [seed, bias, chunkSize] of [[1, false, 8], [2, true, 0]] as const) {
            const c: Case = { n: 37, h: 24, v: 300, seed, bias, ignoreEvery: 4, reduction, smoothing, chunkSize };
            const { got, ref } = await compare(c, target);
            expect(got.dims).toEqual(reduction === 'none' ? [37] : []);
            expect(relErr(got.data as Float32Array, ref.loss)).toBeLessThan(1e-5);
            if (reduction === 'none') expect(Array.from(got.data as Float32Array).filter((_, i) => i % 4 === 1)).toEqual(Array(9).fill(0));
          }
        });

  for (const target of TARGETS)
    it(`${target}: V = 32000 with small N, custom ignore_index`, async () => {
      const c: Case = { n: 6, h: 16, v: 32000, seed: 3, ignoreEvery: 3, ignoreIndex: 7, smoothing: 0.05 };
      const { got, ref } = await compare(c, target);
      expect(relErr(got.data as Float32Array, ref.loss)).toBeLessThan(1e-5);
    });

  for (const target of TARGETS)
    it(`${target}: large logits stay finite (fp32 log-sum-exp is max-subtracted)`, async () => {
      const c: Case = { n: 10, h: 8, v: 50, seed: 4, scale: 400, reduction: 'sum' };
      const { got, ref } = await compare(c, target);
      expect(Math.abs(ref.loss[0])).toBeGreaterThan(100);
      expect(relErr(got.data as Float32Array, ref.loss)).toBeLessThan(1e-5);
    });

  it('webgpu: more chunks than rows (empty trailing chunks) and one chunk', async () => {
    for (const numChunks of [16, 1]) {
      const c: Case = { n: 5, h: 8, v: 40, seed: 5, reduction: 'none' };
      const { got, ref } = await compare(c, 'webgpu', { numChunks });
      expect(relErr(got.data as Float32Array, ref.loss)).toBeLessThan(1e-5);
    }
  });

  it('every label ignored: mean is NaN (as torch), sum is 0', async () => {
    const c: Case = { n: 4, h: 8, v: 20, seed: 6, ignoreEvery: 1 };
    const all = { ...c, ignoreIndex: 3 };
    const d = data(all);
    d.labels.fill(3);
    const feeds = { hidden: f32(d.hidden, [4, 8]), weight: f32(d.weight, [20, 8]), labels: i64(d.labels, [4]) };
    for (const target of TARGETS) {
      expect(Number.isNaN((await runOrt(model(all, target), feeds)).loss.data[0])).toBe(true);
      expect((await runOrt(model({ ...all, reduction: 'sum' }, target), feeds)).loss.data[0]).toBe(0);
    }
  });

  it('runs at opsets 17 (IR 8, reduce axes as attributes, no attribute defaults) and 23', async () => {
    for (const [opset, irVersion] of [[17, 8], [23, 11]])
      for (const target of TARGETS) {
        const c: Case = { n: 19, h: 8, v: 64, seed: 7, ignoreEvery: 5, smoothing: 0.2, chunkSize: 4 };
        const { got, ref } = await compare(c, target, { opset, irVersion });
        expect(relErr(got.data as Float32Array, ref.loss)).toBeLessThan(1e-5);
      }
  });
});

describe('FusedLinearCrossEntropy body structure', () => {
  it('auto chunk size at run time equals Liger next_pow2(ceil(N / ceil(V / H)))', async () => {
    const m = createModel({ opset: 20 });
    const g = new GraphBuilder(m.graph);
    const [n, v, h] = ['n', 'v', 'h'].map((s) => g.input(s, DataType.INT64, [1]));
    g.output(ligerChunk(new Body(m.graph, 20), n, v, h), 'chunk');
    const cases = [[4096, 32000, 64], [4096, 151936, 896], [1, 10, 10], [5, 32000, 16], [1024, 1000, 1000], [4097, 1000, 500], [1 << 20, 2, 1]];
    for (const [nn, vv, hh] of cases) {
      const out = await runOrt(m, { n: i64([nn], [1]), v: i64([vv], [1]), h: i64([hh], [1]) });
      expect([nn, vv, hh, Number(out.chunk.data[0])]).toEqual([nn, vv, hh, ligerChunkSize(nn, vv, hh)]);
    }
    expect(ligerChunkSize(4096, 32000, 64)).toBe(16);
    expect(ligerChunkSize(4096, 151936, 896)).toBe(32);
  });

  it('webgpu body avoids Loop, LogSoftmax, SoftmaxCrossEntropyLoss, OneHot; cpu body chunks with a Loop', () => {
    const c: Case = { n: 8, h: 8, v: 16, seed: 1 };
    const ops = (t: Target) => [...model(c, t).functions[0].body.allNodes()].map((n) => n.opType);
    const gpu = ops('webgpu');
    for (const bad of ['Loop', 'LogSoftmax', 'SoftmaxCrossEntropyLoss', 'OneHot', 'Softmax']) expect(gpu).not.toContain(bad);
    expect(gpu.filter((o) => o === 'Gemm').length).toBe(8 + 2);
    const cpu = ops('cpu');
    expect(cpu).toContain('Loop');
    // The only [*, V] producer is the per-chunk Gemm inside the Loop body (plus the [1, V] bias row).
    const top = model(c, 'cpu').functions[0].body.nodes.filter((n) => n.opType === 'Gemm');
    expect(top.length).toBe(2);
  });

  it('ensureFunction is idempotent, imports ai.ortfuse and mirrors the model opsets; a new target replaces the body', () => {
    const m = model({ n: 4, h: 4, v: 8, seed: 1 }, 'cpu');
    const f1 = m.functions[0];
    expect(ensureFunction(m, 'FusedLinearCrossEntropy', 'cpu')).toBe(f1);
    expect(m.functions.length).toBe(1);
    expect(m.opsetImports.get(ORTFUSE_DOMAIN)).toBe(1);
    expect([...f1.opsetImports]).toEqual([...m.opsetImports]);
    const f2 = ensureFunction(m, 'FusedLinearCrossEntropy', 'webgpu');
    expect(f2).not.toBe(f1);
    expect(m.functions).toEqual([f2]);
    expect(checkModel(m)).toEqual([]);
    // Survives a save/load round trip and is then still recognised as up to date.
    const back = loadBytes(saveBytes(m));
    expect(back.functions.length).toBe(1);
    expect(ensureFunction(back, 'FusedLinearCrossEntropy', 'webgpu')).toBe(back.functions[0]);
    expect(() => ensureFunction(m, 'NoSuchOp', 'cpu')).toThrow(/unknown fused op 'NoSuchOp'/);
  });

  it('validator and inference give clear errors and output shapes', () => {
    const build = (hs: (number | string)[], ws: number[], ls: (number | string)[][], attrs: Record<string, any> = {}) => {
      const m = createModel();
      const g = new GraphBuilder(m.graph);
      const ins = [g.input('h', F, hs), g.input('w', F, ws), null, ...ls.map((s) => g.input('l', DataType.INT64, s))];
      g.op.call('FusedLinearCrossEntropy', ins, attrs, { domain: ORTFUSE_DOMAIN, name: 'lce' });
      return m.graph.nodes[0];
    };
    expect(validateNode(fusedLinearCrossEntropy.schema, build(['N', 64], [1000, 64], [['N']]))[0]).toEqual({ kind: 'tensor', elemType: F, shape: [] });
    expect(validateNode(fusedLinearCrossEntropy.schema, build(['N', 64], [1000, 64], [['N']], { reduction: 'none' }))[0].shape).toEqual(['N']);
    expect(() => validateNode(fusedLinearCrossEntropy.schema, build([8, 64], [1000, 32], [[8]]))).toThrow(
      "node 'lce' (ai.ortfuse::FusedLinearCrossEntropy): hidden [8,64] and weight [1000,32] disagree on H: 64 vs 32");
    expect(() => validateNode(fusedLinearCrossEntropy.schema, build([8, 64], [1000, 64], [[2, 4]]))).toThrow(/input 'labels' has shape \[2,4\], expected rank 1/);
    expect(() => validateNode(fusedLinearCrossEntropy.schema, build([8, 64], [1000, 64], [[9]]))).toThrow(/disagree on N/);
    expect(() => validateNode(fusedLinearCrossEntropy.schema, build([8, 64], [1000, 64], [[8]], { reduction: 'avg' }))).toThrow(/reduction='avg' is not one of 'mean', 'sum', 'none'/);
    expect(() => validateNode(fusedLinearCrossEntropy.schema, build([8, 64], [1000, 64], []))).toThrow(/expected 3..4 inputs, got 3|required input 'labels' is missing/);
  });
});

describe('FusedLinearCrossEntropy float64 reference', () => {
  it('gradients match finite differences (bias, ignore rows, smoothing, every reduction)', () => {
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      const c: Case = { n: 5, h: 3, v: 7, seed: 11, bias: true, ignoreEvery: 3, reduction, smoothing: 0.15 };
      const d = data(c);
      const x = { ...c, hidden: Float64Array.from(d.hidden), weight: Float64Array.from(d.weight), bias: Float64Array.from(d.bias!), labels: d.labels };
      const o: LinearCEOptions = { reduction, labelSmoothing: 0.15 };
      const go = reduction === 'none' ? Float64Array.from({ length: c.n }, (_, i) => 0.5 + i) : 1.7;
      const f = () => {
        const l = linearCrossEntropyRef(x, o).loss;
        return typeof go === 'number' ? go * l[0] : l.reduce((s, v, i) => s + v * go[i], 0);
      };
      const g = linearCrossEntropyGradRef(x, o, go);
      const idx = (len: number) => [0, 1, Math.floor(len / 2), len - 1];
      for (const [arr, grad] of [[x.hidden, g.dHidden], [x.weight, g.dWeight], [x.bias, g.dBias]] as const) {
        const fd = finiteDiff(f, arr, idx(arr.length));
        idx(arr.length).forEach((i, k) => expect(grad[i]).toBeCloseTo(fd[k], 6));
      }
      // Ignored rows get zero gradient.
      expect(Array.from(g.dHidden.slice(1 * c.h, 2 * c.h))).toEqual([0, 0, 0]);
    }
  });
});
