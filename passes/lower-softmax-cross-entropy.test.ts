/**
 * lower-softmax-cross-entropy: each loss form (SoftmaxCrossEntropyLoss with/without log_prob and
 * weights, LogSoftmax + NegativeLogLikelihoodLoss, the bare forms), every reduction, ignore_index,
 * int32 labels, [N, C, d] scores, large logit magnitudes. Loss and d loss / d scores of the lowered
 * graph (autodiff of the emitted ops) against the original ONNX op in onnxruntime-node (autodiff's
 * loss rules for the gradient) and against a float64 closed form (softmax − onehot). Near misses
 * must not lower.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { addGradients } from '../src/autodiff/index.js';
import { cloneModel } from '../src/autodiff/clone.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { checkModel } from '../src/ir/checker.js';
import type { Model, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { opCounts, runOrt } from '../src/rewrite/testing.js';
import { randn, rng } from '../src/random.js';
import { lowerSoftmaxCrossEntropyPass, NAME } from './lower-softmax-cross-entropy.js';

const F = DataType.FLOAT;
const IGNORE = -100;
type Reduction = 'mean' | 'sum' | 'none';

interface Case {
  form: 'sce' | 'log-softmax-nll' | 'shared-log-softmax';
  reduction: Reduction;
  ignore?: boolean;
  weights?: boolean;
  logProb?: boolean;
  /** [N, C, D] scores, labels [N, D]. */
  spatial?: boolean;
  int32?: boolean;
  /** Logits ~ N(0, scale) + offset. */
  scale?: number;
  offset?: number;
  /** Every label ignored. */
  allIgnored?: boolean;
  opset?: number;
}

const [N, C, D] = [12, 37, 3];

function dims(c: Case): { x: number[]; y: number[] } {
  return c.spatial ? { x: [N, C, D], y: [N, D] } : { x: [N, C], y: [N] };
}

/** Seeded scores, labels (about a quarter ignored) and class weights. */
function data(c: Case, seed: number): { x: Float32Array; y: number[]; w: Float32Array } {
  const d = dims(c);
  const r = rng(seed);
  const x = randn(r, d.x.reduce((a, b) => a * b, 1), c.scale ?? 2).map((t) => t + (c.offset ?? 0));
  const y = Array.from({ length: d.y.reduce((a, b) => a * b, 1) }, (_, i) =>
    c.allIgnored || (c.ignore && r() < 0.25 && i > 0) ? IGNORE : Math.floor(r() * C));
  const w = Float32Array.from({ length: C }, () => 0.25 + r());
  return { x, y, w };
}

/** The model: x [N, C(, D)] → loss (reduction 'none': Σ loss · r, a fixed random r), [log_prob], d loss / dx. */
function build(c: Case, lower: boolean, w: Float32Array, rWeights: Float32Array): { model: Model; outputs: number } {
  const m = createModel({ opset: c.opset ?? 20 });
  const b = new GraphBuilder(m.graph);
  const op = b.op;
  const d = dims(c);
  const x = b.input('x', F, d.x);
  const y = b.input('y', c.int32 ? DataType.INT32 : DataType.INT64, d.y);
  const wv = c.weights ? b.initializer('class_weights', Tensor.from(F, [C], w)) : null;
  const attrs = { reduction: c.reduction, ...(c.ignore ? { ignore_index: IGNORE } : {}) };
  let loss: Value;
  const extra: Value[] = [];
  if (c.form === 'sce') {
    const outs = op.call('SoftmaxCrossEntropyLoss', [x, y, wv], attrs, { outputs: c.logProb ? 2 : 1 });
    loss = outs[0];
    if (c.logProb) extra.push(outs[1]);
  } else {
    const lp = op.LogSoftmax(x, { axis: 1 });
    if (c.form === 'shared-log-softmax') extra.push(lp);
    loss = op.NegativeLogLikelihoodLoss(lp, y, wv, attrs);
  }
  b.output(loss, 'loss');
  extra.forEach((e, i) => b.output(e, `extra${i}`));
  if (lower) {
    const r = lowerSoftmaxCrossEntropyPass.run(m, newContext());
    expect(r.counts[NAME]).toBe(c.form === 'shared-log-softmax' ? 2 : 1);
    loss = m.graph.outputs[0]; // the lowered loss took the output slot
  }
  const objective = c.reduction === 'none' ? op.ReduceSum(op.Mul(loss, b.initializer('r', Tensor.from(F, d.y, rWeights))), { keepdims: 0 }) : loss;
  const { grads } = addGradients(m.graph, { loss: objective, wrt: [x] });
  b.output(grads.get(x)!, 'dx');
  expect(checkModel(m)).toEqual([]);
  return { model: m, outputs: 2 + extra.length };
}

/** Float64 closed form: loss (per reduction) and d(objective)/dx. */
function reference(c: Case, x: Float32Array, y: number[], w: Float32Array, rw: Float32Array): { loss: number[]; dx: Float64Array } {
  const dd = c.spatial ? D : 1;
  const at = (n: number, k: number, j: number) => (n * C + k) * dd + j;
  const per: number[] = [];
  const wpos: number[] = [];
  const soft: number[][] = [];
  for (let n = 0; n < N; n++)
    for (let j = 0; j < dd; j++) {
      const label = y[n * dd + j];
      let mx = -Infinity;
      for (let k = 0; k < C; k++) mx = Math.max(mx, x[at(n, k, j)]);
      let s = 0;
      for (let k = 0; k < C; k++) s += Math.exp(x[at(n, k, j)] - mx);
      const lse = mx + Math.log(s);
      soft.push(Array.from({ length: C }, (_, k) => Math.exp(x[at(n, k, j)] - lse)));
      const ok = !(c.ignore && label === IGNORE);
      const wt = ok ? (c.weights ? w[label] : 1) : 0;
      wpos.push(wt);
      per.push(ok ? wt * (lse - x[at(n, label, j)]) : 0);
    }
  const sumW = wpos.reduce((a, b) => a + b, 0);
  const total = per.reduce((a, b) => a + b, 0);
  const loss = c.reduction === 'none' ? per : c.reduction === 'sum' ? [total] : [total / sumW];
  const dx = new Float64Array(x.length);
  for (let n = 0; n < N; n++)
    for (let j = 0; j < dd; j++) {
      const p = n * dd + j;
      let coef = wpos[p];
      if (c.reduction === 'mean') coef = sumW ? coef / sumW : 0;
      if (c.reduction === 'none') coef *= rw[p];
      if (!coef) continue;
      for (let k = 0; k < C; k++) dx[at(n, k, j)] = coef * (soft[p][k] - (k === y[p] ? 1 : 0));
    }
  return { loss, dx };
}

/** max |a − b| / max(max |b|, 1e-30); NaN where both are NaN counts as equal. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, s = 0;
  for (let i = 0; i < b.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return a.length === b.length ? d / Math.max(s, 1e-30) : Infinity;
}

async function runCase(c: Case, seed = 3) {
  const { x, y, w } = data(c, seed);
  const rw = randn(rng(seed + 100), dims(c).y.reduce((a, b) => a * b, 1));
  const feeds = {
    x: new ort.Tensor('float32', x, dims(c).x),
    y: c.int32 ? new ort.Tensor('int32', Int32Array.from(y), dims(c).y) : new ort.Tensor('int64', BigInt64Array.from(y.map(BigInt)), dims(c).y),
  };
  const original = build(c, false, w, rw);
  const lowered = build(c, true, w, rw);
  const [want, got] = [await runOrt(original.model, feeds), await runOrt(lowered.model, feeds)];
  const num = (t: ort.Tensor) => Array.from(t.data as Float32Array, Number);
  const ref = reference(c, x, y, w, rw);
  return { want: want.map(num), got: got.map(num), ref, ops: opCounts(lowered.model), original: opCounts(original.model) };
}

const LOSS_OPS = ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'LogSoftmax', 'OneHot', 'Softmax'];

describe(NAME, () => {
  const cases: [string, Case][] = [
    ['SCE mean, ignore_index', { form: 'sce', reduction: 'mean', ignore: true }],
    ['SCE sum, ignore_index', { form: 'sce', reduction: 'sum', ignore: true }],
    ['SCE none, ignore_index', { form: 'sce', reduction: 'none', ignore: true }],
    ['SCE mean, no ignore_index', { form: 'sce', reduction: 'mean' }],
    ['SCE sum, no ignore_index', { form: 'sce', reduction: 'sum' }],
    ['SCE mean, class weights + ignore_index', { form: 'sce', reduction: 'mean', ignore: true, weights: true }],
    ['SCE none, class weights', { form: 'sce', reduction: 'none', weights: true }],
    ['SCE mean, logits ~ N(0, 300) + 5000', { form: 'sce', reduction: 'mean', ignore: true, scale: 300, offset: 5000 }],
    ['SCE mean, logits ~ N(0, 1000) − 20000', { form: 'sce', reduction: 'mean', ignore: true, scale: 1000, offset: -20000 }],
    ['SCE [N, C, D], int32 labels, log_prob read, none', { form: 'sce', reduction: 'none', ignore: true, spatial: true, int32: true, logProb: true }],
    ['SCE opset 17 (axes as attributes)', { form: 'sce', reduction: 'mean', ignore: true, opset: 17 }],
    ['LogSoftmax + NLL mean, ignore_index', { form: 'log-softmax-nll', reduction: 'mean', ignore: true }],
    ['LogSoftmax + NLL sum, weights, [N, C, D]', { form: 'log-softmax-nll', reduction: 'sum', weights: true, spatial: true }],
    ['LogSoftmax read elsewhere + NLL mean (both lowered alone)', { form: 'shared-log-softmax', reduction: 'mean', ignore: true, scale: 50 }],
  ];
  for (const [title, c] of cases)
    it(`${title}: loss and gradient equal the original op's and the float64 closed form`, async () => {
      const r = await runCase(c);
      for (const o of LOSS_OPS) expect(r.ops[o] ?? 0, o).toBe(0);
      expect(r.ops.GatherElements).toBe(1);
      // The original graph did hold the loss (the comparison is not vacuous).
      expect((r.original.SoftmaxCrossEntropyLoss ?? 0) + (r.original.NegativeLogLikelihoodLoss ?? 0)).toBe(1);
      const [lossWant, ...restWant] = r.want;
      const [lossGot, ...restGot] = r.got;
      const tol = 2e-6;
      expect(relDiff(lossGot, lossWant)).toBeLessThan(tol);
      expect(relDiff(lossGot, r.ref.loss)).toBeLessThan(tol);
      for (let i = 0; i < restWant.length; i++) expect(relDiff(restGot[i], restWant[i]), `output ${i + 1}`).toBeLessThan(1e-5);
      const dx = r.got[r.got.length - 1];
      expect(relDiff(dx, r.ref.dx)).toBeLessThan(1e-5);
      expect(Math.max(...r.ref.dx.map(Math.abs))).toBeGreaterThan(1e-3);
    });

  it('every label ignored, mean: NaN loss as the original op, zero gradient as its autodiff rule', async () => {
    const r = await runCase({ form: 'sce', reduction: 'mean', ignore: true, allIgnored: true });
    expect(r.want[0][0]).toBeNaN();
    expect(r.got[0][0]).toBeNaN();
    expect(r.want[1].every((t) => t === 0)).toBe(true);
    expect(r.got[1].every((t) => t === 0)).toBe(true);
  });

  it('builds no ReduceMax backward (the max only shifts the range) and emits no float op the WebGPU EP runs on the CPU', () => {
    const c: Case = { form: 'sce', reduction: 'mean', ignore: true };
    const { model } = build(c, true, new Float32Array(C), new Float32Array(N));
    const ops = opCounts(model);
    // Forward ReduceMax only; the backward's [x = max] mask would need an Equal over [N, C].
    expect(ops.ReduceMax).toBe(1);
    const backward = model.graph.nodes.filter((n) => n.name.startsWith('autodiff'));
    expect(backward.some((n) => n.opType === 'Equal' && n.inputs.some((v) => v?.name === 'x'))).toBe(false);
    for (const o of [...LOSS_OPS, 'Loop']) expect(ops[o] ?? 0, o).toBe(0);
  });

  it('leaves near misses alone and says why', () => {
    // Opset 12: the loss ops' semantics before 13 are not lowered.
    const m = createModel({ opset: 12 });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [N, C]);
    const y = b.input('y', DataType.INT64, [N]);
    b.output(b.op.SoftmaxCrossEntropyLoss(x, y, { reduction: 'mean' }), 'loss');
    const ctx = newContext({}, true);
    expect(lowerSoftmaxCrossEntropyPass.run(m, ctx).modified).toBe(false);
    expect(ctx.explanations.find((e) => e.rule === NAME)?.reason).toMatch(/opset 12/);
    // Integer scores: no float type to lower to.
    const m2 = createModel({ opset: 20 });
    const b2 = new GraphBuilder(m2.graph);
    const xi = b2.input('x', DataType.INT32, [N, C]);
    b2.output(b2.op.LogSoftmax(xi), 'y');
    const ctx2 = newContext({}, true);
    expect(lowerSoftmaxCrossEntropyPass.run(m2, ctx2).modified).toBe(false);
    expect(ctx2.explanations.find((e) => e.rule === NAME)?.reason).toMatch(/not of a known float type/);
    // A second run of the pass on a lowered graph changes nothing.
    const { model } = build({ form: 'sce', reduction: 'sum' }, true, new Float32Array(C), new Float32Array(N));
    expect(lowerSoftmaxCrossEntropyPass.run(cloneModel(model), newContext()).modified).toBe(false);
  });
});
