/**
 * Liger-style linear-CE gradients: FusedLinearCrossEntropyWithGrad's bodies ('cpu' Loop, 'webgpu'
 * unrolled) against the float64 reference loss and gradients, and the training-graph swap
 * (FusedLinearCrossEntropy → ...WithGrad, backward = scaling only) against finite differences and
 * against the backward-only (recompute) rule.
 */
import { FUSED_INFER_RULES, FUSED_OPS } from '../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { ensureFunctions } from '../custom-ops/index.js';
import { fusedLinearCrossEntropyWithGrad } from '../custom-ops/fused-linear-cross-entropy/with-grad.js';
import { linearCrossEntropyGradRef, linearCrossEntropyRef } from '../custom-ops/fused-linear-cross-entropy/reference.js';
import { ensureFunction } from '../custom-ops/functions.js';
import { f32, i64, randn, relErr, rng, runOrt } from '../custom-ops/testing.js';
import { validateNode, type Target } from '../src/fused/types.js';
import { linearCrossEntropyWithGradSchema } from '../custom-ops/fused-linear-cross-entropy/with-grad-schema.js';
import { addGradients, gradTable } from '../src/autodiff/index.js';
import { checkModel, createModel, GraphBuilder, type Model } from '../src/ir/index.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { DataType } from '../src/onnx/schema.js';
import { gradCheck, type InputSpec } from './autodiff-util.js';
import { Tensor } from '../src/ir/tensor.js';
import { LOSS_SCALE } from '../src/autodiff/names.js';
import { prepareTraining } from '../src/runtime/session.js';
import { tinyModel } from './mixed-helpers.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';

const F = DataType.FLOAT;

interface Case { n: number; h: number; v: number; bias: boolean; reduction: 'mean' | 'sum'; eps: number; chunk?: number; chunks?: number; ignoreAll?: boolean }

function withGradModel(c: Case, target: Target): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const ins = [b.input('hidden', F, ['N', c.h]), b.input('weight', F, [c.v, c.h]), c.bias ? b.input('bias', F, [c.v]) : null, b.input('labels', DataType.INT64, ['N'])];
  const outs = b.op.call('FusedLinearCrossEntropyWithGrad', ins, {
    reduction: c.reduction, label_smoothing: { float: c.eps }, chunk_size: c.chunk, num_chunks: c.chunks,
  }, { domain: 'ai.ortfuse', outputs: 4 });
  ['loss', 'dh', 'dw', 'db'].forEach((name, i) => b.output(outs[i], name));
  const fn = ensureFunction(m, fusedLinearCrossEntropyWithGrad, target);
  const ops = new Set([...fn.body.allNodes()].map((n) => n.opType));
  if (target === 'webgpu') for (const bad of ['Loop', 'LogSoftmax', 'OneHot', 'SoftmaxCrossEntropyLoss']) expect(ops.has(bad), bad).toBe(false);
  else expect(ops.has('Loop')).toBe(true);
  inferShapes(m, { rules: FUSED_INFER_RULES });
  expect(checkModel(m).map((p) => p.message)).toEqual([]);
  return m;
}

async function compareWithRef(c: Case, target: Target) {
  const r = rng(c.n * 31 + c.v);
  const hidden = randn(r, c.n * c.h);
  const weight = randn(r, c.v * c.h, 0.3);
  const bias = randn(r, c.v);
  const labels = Array.from({ length: c.n }, (_, i) => (c.ignoreAll || i % 5 === 2 ? -100 : Math.floor(r() * c.v)));
  const feeds: Record<string, ort.Tensor> = { hidden: f32(hidden, [c.n, c.h]), weight: f32(weight, [c.v, c.h]), labels: i64(labels, [c.n]) };
  if (c.bias) feeds.bias = f32(bias, [c.v]);
  const out = await runOrt(withGradModel(c, target), feeds);
  const x = { n: c.n, h: c.h, v: c.v, hidden, weight, bias: c.bias ? bias : undefined, labels };
  const o = { reduction: c.reduction, labelSmoothing: c.eps };
  return { out, loss: linearCrossEntropyRef(x, o).loss, grads: linearCrossEntropyGradRef(x, o, 1) };
}

describe('FusedLinearCrossEntropyWithGrad vs float64 reference', () => {
  const cases: [string, Case][] = [
    ['mean, bias, N=37 not a multiple of chunk 8', { n: 37, h: 24, v: 300, bias: true, reduction: 'mean', eps: 0, chunk: 8, chunks: 3 }],
    ['sum, label smoothing, no bias, Liger chunk', { n: 37, h: 24, v: 300, bias: false, reduction: 'sum', eps: 0.1 }],
    ['mean, smoothing, bias, V=5000 > N (webgpu: empty trailing chunks)', { n: 5, h: 16, v: 5000, bias: true, reduction: 'mean', eps: 0.05, chunks: 8 }],
  ];
  for (const target of ['cpu', 'webgpu'] as const)
    it.each(cases)(`${target}: %s`, async (_name, c) => {
      const { out, loss, grads } = await compareWithRef(c, target);
      expect(out.loss.dims).toEqual([]);
      expect(relErr(out.loss.data as Float32Array, loss)).toBeLessThan(1e-5);
      expect(out.dh.dims).toEqual([c.n, c.h]);
      expect(relErr(out.dh.data as Float32Array, grads.dHidden)).toBeLessThan(1e-4);
      expect(relErr(out.dw.data as Float32Array, grads.dWeight)).toBeLessThan(1e-4);
      expect(relErr(out.db.data as Float32Array, grads.dBias)).toBeLessThan(1e-4);
      // ignored rows get exactly zero gradient
      const dh = out.dh.data as Float32Array;
      expect(dh.subarray(2 * c.h, 3 * c.h).every((v) => v === 0)).toBe(true);
    });

  it("every label ignored: NaN 'mean' loss (as torch), zero gradients", async () => {
    const { out } = await compareWithRef({ n: 6, h: 8, v: 20, bias: true, reduction: 'mean', eps: 0, chunk: 4, ignoreAll: true }, 'cpu');
    expect(Number.isNaN(out.loss.data[0] as number)).toBe(true);
    expect((out.dw.data as Float32Array).every((v) => v === 0)).toBe(true);
  });

  it("rejects reduction 'none' (no in-forward gradient)", () => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const ins = [b.input('h', F, [2, 2]), b.input('w', F, [3, 2]), null, b.input('y', DataType.INT64, [2])];
    b.op.call('FusedLinearCrossEntropyWithGrad', ins, { reduction: 'none' }, { domain: 'ai.ortfuse', outputs: 4 });
    expect(() => validateNode(linearCrossEntropyWithGradSchema, m.graph.nodes[0])).toThrow(/reduction 'none' has no in-forward gradient/);
  });
});

const labels = [3, -100, 0, 6, 2, -100, 1];
const specs = (withBias: boolean): InputSpec[] => [
  { name: 'hidden', dims: [labels.length, 4], type: F, decl: ['N', 4] },
  { name: 'weight', dims: [7, 4], type: F },
  ...(withBias ? [{ name: 'bias', dims: [7], type: F }] : []),
  { name: 'labels', dims: [labels.length], type: DataType.INT64, data: labels },
];
const flce = (withBias: boolean, attrs: Record<string, unknown>) => (b: GraphBuilder, xs: ReturnType<GraphBuilder['input']>[]) =>
  b.op.call('FusedLinearCrossEntropy', [xs[0], xs[1], withBias ? xs[2] : null, xs[xs.length - 1]], attrs as never, { domain: 'ai.ortfuse' })[0];
const prepare = (m: Model) => void ensureFunctions(m, 'cpu');

describe('training-graph swap: FusedLinearCrossEntropy → ...WithGrad', () => {
  // float32 op: float32 finite differences (h = 1e-2), 2e-3 tolerance; both modes must agree.
  it.each([
    ['mean, bias, 4 chunks', true, { chunk_size: 2 }],
    ['sum, label smoothing, no bias', false, { reduction: 'sum', label_smoothing: { float: 0.1 }, chunk_size: 3 }],
  ] as const)('%s: in-forward and recompute gradients match finite differences and each other', async (_n, withBias, attrs) => {
    const fwd = await gradCheck(specs(withBias), flce(withBias, attrs), { prepare, h: 1e-2 });
    const rec = await gradCheck(specs(withBias), flce(withBias, attrs), { prepare, h: 1e-2, inForward: false });
    const ops = (m: Model) => m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType);
    expect(ops(fwd.model)).toEqual(['FusedLinearCrossEntropyWithGrad']);
    expect(ops(rec.model)).toEqual(['FusedLinearCrossEntropy']);
    for (const name of Object.keys(fwd.errors)) {
      expect(fwd.scale[name]).toBeGreaterThan(1e-6);
      expect(fwd.errors[name], `d/d${name}`).toBeLessThan(2e-3);
      expect(relErr(fwd.analytic[name], rec.analytic[name]), `d/d${name} in-forward vs recompute`).toBeLessThan(1e-5);
    }
    expect(Object.keys(fwd.errors)).toHaveLength(withBias ? 3 : 2);
  });

  it('the backward of a loss that is the graph output is no node at all (dloss = 1); reduction none keeps the recompute rule', () => {
    const build = (reduction: string) => {
      const m = createModel({ opset: 20 });
      const b = new GraphBuilder(m.graph);
      const h = b.input('hidden', F, ['N', 4]);
      const w = b.input('weight', F, [7, 4]);
      const y = b.input('labels', DataType.INT64, ['N']);
      const l = b.op.call('FusedLinearCrossEntropy', [h, w, null, y], { reduction }, { domain: 'ai.ortfuse' })[0];
      const loss = reduction === 'none' ? b.op.ReduceSum(l, { keepdims: 0 }) : l;
      b.output(loss, 'loss');
      inferShapes(m, { rules: FUSED_INFER_RULES });
      return { m, r: addGradients(m.graph, { loss, wrt: [h, w], rules: gradTable(FUSED_OPS) }), h, w };
    };
    const { m, r, h, w } = build('mean');
    expect(r.nodes).toHaveLength(0);
    const node = m.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropyWithGrad')!;
    expect(r.grads.get(h)).toBe(node.outputs[1]);
    expect(r.grads.get(w)).toBe(node.outputs[2]);
    const none = build('none');
    expect(none.m.graph.nodes.some((n) => n.opType === 'FusedLinearCrossEntropy')).toBe(true);
    expect(none.m.graph.nodes.filter((n) => n.opType === 'Loop')).toHaveLength(1);
  });
});

describe("linear-CE's dloss as the in-forward node's grad_scale (mixed precision's loss_scale)", () => {
  /** hidden [7, 4] · weight [10, 4] → FusedLinearCrossEntropy ('mean'), then `after` → loss; seed: `seed`. */
  const build = (seed: 'input' | 'initializer' | 'one', after?: 'Div', inForward = true) => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const h = b.input('hidden', F, [7, 4]);
    const w = b.input('weight', F, [10, 4]);
    const y = b.input('labels', DataType.INT64, [7]);
    const l = b.op.call('FusedLinearCrossEntropy', [h, w, null, y], {}, { domain: 'ai.ortfuse', name: 'lce' })[0];
    const loss = after === 'Div' ? b.op.Div(l, b.initializer('micro', Tensor.from(F, [], [4]))) : l;
    b.output(loss, 'loss');
    inferShapes(m, { rules: FUSED_INFER_RULES });
    const s = seed === 'input' ? b.input('s', F, []) : seed === 'initializer' ? b.initializer('s', Tensor.from(F, [], [2])) : undefined;
    const r = addGradients(m.graph, { loss, wrt: [h, w], seed: s, rules: gradTable(FUSED_OPS), inForward });
    r.grads.forEach((g, v) => b.output(b.op.Identity(g), `d_${v.name}`));
    ensureFunctions(m, 'cpu');
    const node = m.graph.nodes.find((n) => n.opType.startsWith('FusedLinearCrossEntropy'))!;
    return { m, r, node, s };
  };
  const readsGrads = (node: ReturnType<typeof build>['node']) => node.outputs.slice(1).flatMap((o) => o.uses().map((u) => u.node.opType));
  const r = rng(3);
  const feeds = { hidden: f32(randn(r, 28), [7, 4]), weight: f32(randn(r, 40, 0.5), [10, 4]), labels: i64([3, -100, 0, 6, 2, 9, 1], [7]) };
  const at = (m: Model, s: number) => runOrt(m, { ...feeds, s: f32(Float32Array.of(s), []) });

  it('a graph-input seed becomes input 4 of FusedLinearCrossEntropyWithGrad: no backward node, gradients 2^5 × at 2^5, and as the recompute rule at 3', async () => {
    const { m, r: res, node, s } = build('input');
    expect(node.opType).toBe('FusedLinearCrossEntropyWithGrad');
    expect(node.inputs[4]).toBe(s);
    expect(res.nodes.map((n) => n.opType)).toEqual([]);
    expect(readsGrads(node)).toEqual(['Identity', 'Identity']);
    expect(checkModel(m).map((p) => p.message)).toEqual([]);
    const [one, big, three] = [await at(m, 1), await at(m, 32), await at(m, 3)];
    for (const k of ['d_hidden', 'd_weight']) {
      const [x, z] = [one[k].data as Float32Array, big[k].data as Float32Array];
      expect(x.some((t) => t !== 0)).toBe(true);
      for (let i = 0; i < x.length; i++) if (z[i] !== 32 * x[i]) expect.fail(`${k}[${i}]: ${z[i]} is not 32 × ${x[i]}`);
    }
    const rec = build('input', undefined, false);
    expect(rec.node.opType).toBe('FusedLinearCrossEntropy');
    const want = await at(rec.m, 3);
    for (const k of ['d_hidden', 'd_weight']) expect(relErr(three[k].data as Float32Array, want[k].data as Float32Array), k).toBeLessThan(1e-5);
  });

  it('an initializer seed is wired the same way; a constant 1 is not (fp32: the node keeps its 4 inputs)', async () => {
    const init = build('initializer');
    expect(init.node.inputs[4]).toBe(init.s);
    expect(init.r.nodes.map((n) => n.opType)).toEqual([]);
    const out = await runOrt(init.m, feeds);
    const one = await at(build('input').m, 1);
    for (const k of ['d_hidden', 'd_weight']) expect(Array.from(out[k].data as Float32Array)).toEqual(Array.from(one[k].data as Float32Array, (t) => 2 * t));
    const plain = build('one');
    expect(plain.node.inputs).toHaveLength(4);
    expect(plain.r.nodes.map((n) => n.opType)).toEqual([]);
  });

  it('a dloss the backward computes (a Div between the op and the loss) keeps the Mul; the node keeps its 4 inputs', async () => {
    const { m, node } = build('input', 'Div');
    expect(node.inputs).toHaveLength(4);
    expect(readsGrads(node)).toEqual(['Mul', 'Mul']);
    const [one, big] = [await at(m, 1), await at(m, 8)];
    expect(relErr(big.d_weight.data as Float32Array, Array.from(one.d_weight.data as Float32Array, (t) => 8 * t))).toBeLessThan(1e-6);
  });

  for (const target of ['cpu', 'webgpu'] as const)
    it(`prepareTraining(tiny Qwen2, mixed, ${target}): the with-grad node reads loss_scale and no Mul reads its gradients; fp32: no grad_scale`, () => {
      const mixed = prepareTraining(tinyModel(), { fuse: true, precision: 'mixed', target }).train;
      const node = mixed.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropyWithGrad')!;
      expect(node.inputs[4]?.name).toBe(LOSS_SCALE);
      expect(node.inputs[4]!.isGraphInput()).toBe(true);
      const readers = node.outputs.slice(1).flatMap((o) => o.uses().map((u) => u.node));
      expect(readers.length).toBeGreaterThan(0);
      expect(readers.filter((n) => n.opType === 'Mul').map((n) => n.label)).toEqual([]);
      const fn = mixed.functions.find((f) => f.name === 'FusedLinearCrossEntropyWithGrad')!;
      expect(fn.body.inputs).toHaveLength(5);
      if (target === 'webgpu') {
        // The stage split hands the graph input to our kernel's call (the runner reads it from the feeds).
        const split = splitStages(mixed, {}, FUSED_OPS)!;
        const call = split.plan.steps.flatMap((st) => (st.kind === 'kernel' && st.call.op === 'flce' ? [st.call] : []));
        expect(call.map((c) => c.inputs[4])).toEqual([LOSS_SCALE]);
        expect(split.plan.inputLastUse?.[LOSS_SCALE]).toBe(split.plan.steps.findIndex((st) => st.kind === 'kernel' && st.call === call[0]));
      }
      const fp32 = prepareTraining(tinyModel(), { fuse: true, target }).train;
      expect(fp32.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropyWithGrad')!.inputs).toHaveLength(4);
      expect(fp32.functions.find((f) => f.name === 'FusedLinearCrossEntropyWithGrad')!.body.inputs).toHaveLength(4);
    });
});
