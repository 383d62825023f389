/**
 * The training-step graph on a builder-made float64 model (tied embedding + attention-like
 * softmax + MLP + cross-entropy with ignored rows) against finite differences, and its options:
 * naming, frozen parameters, gradient accumulation, dropped outputs. The torch fixtures:
 * train-graph-fixtures.test.ts.
 */
import { FUSED_OPS } from '../custom-ops/registry.js';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildTrainingGraph, GRAD_IN_PREFIX, GRAD_PREFIX, trainingSignature } from '../src/autodiff/index.js';
import { createModel, GraphBuilder, Tensor, type Model } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { makeTensor, rng, session } from './autodiff-util.js';

const V = 7; // vocab
const H = 4; // hidden
const B = 2;
const S = 3;
const ids = [1, 3, 3, 0, 6, 2];
const labels = [3, -100, 0, 6, 2, -100];

/** embed (tied) → q·kᵀ softmax mixing → tanh MLP with bias → RMS-style norm → lm_head → SCE. */
function tinyModel(): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const rand = rng(3);
  const init = (name: string, dims: number[]) =>
    b.initializer(name, Tensor.from(DataType.DOUBLE, dims, Array.from({ length: dims.reduce((x, y) => x * y, 1) }, () => rand() - 0.5)));
  const inputIds = b.input('input_ids', DataType.INT64, ['batch', 'seq']);
  const lab = b.input('labels', DataType.INT64, ['batch', 'seq']);
  const E = init('model.embed.weight', [V, H]);
  const Wq = init('model.q.weight', [H, H]);
  const W1 = init('model.mlp.weight', [H, H]);
  const b1 = init('model.mlp.bias', [H]);
  const g = init('model.norm.weight', [H]);
  const x = b.op.Gather(E, inputIds, { axis: 0 }); // [B,S,H]
  const q = b.op.MatMul(x, Wq);
  const scores = b.op.Div(b.op.MatMul(q, b.op.Transpose(x, { perm: [0, 2, 1] })), b.constant([2], { dtype: DataType.DOUBLE, dims: [] }));
  const att = b.op.MatMul(b.op.Softmax(scores, { axis: -1 }), x);
  const h = b.op.Add(att, b.op.Tanh(b.op.Add(b.op.MatMul(att, W1), b1)));
  const ms = b.op.ReduceMean(b.op.Pow(h, b.constant([2], { dtype: DataType.DOUBLE, dims: [] })), b.constant([-1]), { keepdims: 1 });
  const normed = b.op.Mul(b.op.Mul(h, b.op.Reciprocal(b.op.Sqrt(b.op.Add(ms, b.constant([1e-6], { dtype: DataType.DOUBLE, dims: [] }))))), g);
  const logits = b.op.MatMul(normed, b.op.Transpose(E, { perm: [1, 0] }));
  const flat = b.op.Reshape(logits, b.constant([-1, V]));
  const loss = b.op.SoftmaxCrossEntropyLoss(flat, b.op.Reshape(lab, b.constant([-1])), { ignore_index: -100 });
  b.output(loss, 'loss');
  b.output(logits, 'logits');
  // A parameter only an auxiliary output reads: the loss does not depend on it.
  b.output(b.op.MatMul(normed, init('model.aux.weight', [H, 2])), 'aux');
  return m;
}

function paramValues(m: Model): Map<string, number[]> {
  return new Map(m.graph.initializers.filter((v) => v.name.startsWith('model.') && v.name !== 'model.aux.weight').map((v) => [v.name, Array.from(v.initializer!.toArray() as Float64Array)]));
}

function feeds(params: Map<string, number[]>, dims: Map<string, number[]>): Record<string, ort.Tensor> {
  const f: Record<string, ort.Tensor> = {
    input_ids: makeTensor(DataType.INT64, [B, S], ids),
    labels: makeTensor(DataType.INT64, [B, S], labels),
  };
  for (const [n, v] of params) f[n] = makeTensor(DataType.DOUBLE, dims.get(n)!, v);
  return f;
}

describe('buildTrainingGraph', () => {
  it('gives every parameter its finite-difference gradient (float64, tied embedding)', async () => {
    const model = tinyModel();
    const train = buildTrainingGraph(model, { ops: FUSED_OPS });
    const sig = trainingSignature(train);
    expect(sig.parameters.sort()).toEqual(['model.embed.weight', 'model.mlp.bias', 'model.mlp.weight', 'model.norm.weight', 'model.q.weight']);
    expect(train.graph.outputs[0].name).toBe('loss');
    expect(train.graph.outputs).toHaveLength(6);
    expect(train.graph.outputs.slice(1).every((v) => v.name.startsWith(GRAD_PREFIX))).toBe(true);
    expect(train.graph.outputs.some((v) => v.name === 'logits')).toBe(false);
    expect(model.graph.outputs.map((v) => v.name)).toEqual(['loss', 'logits', 'aux']); // input model untouched
    expect(train.graph.initializers.map((v) => v.name)).not.toContain('model.aux.weight');
    const params = paramValues(model);
    const dims = new Map(model.graph.initializers.map((v) => [v.name, v.initializer!.dims]));
    const s = await session(train);
    const out = await s.run(feeds(params, dims));
    const lossOnly = await session(train); // same graph; finite differences read only `loss`
    for (const [name, vals] of params) {
      const analytic = Array.from(out[GRAD_PREFIX + name].data as Float64Array);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < vals.length; i++) {
        const at = async (d: number) => {
          const p = new Map(params);
          const v = vals.slice();
          v[i] += d;
          p.set(name, v);
          return Number((await lossOnly.run(feeds(p, dims), ['loss'])).loss.data[0]);
        };
        const h = 1e-6;
        const num = ((await at(h)) - (await at(-h))) / (2 * h);
        worst = Math.max(worst, Math.abs(num - analytic[i]));
        scale = Math.max(scale, Math.abs(num));
      }
      expect(scale, name).toBeGreaterThan(1e-6);
      expect(worst / scale, name).toBeLessThan(1e-6);
    }
  });

  it('keeps frozen parameters as initializers and accumulates gradients on request', async () => {
    const model = tinyModel();
    const plain = buildTrainingGraph(model, { ops: FUSED_OPS });
    const train = buildTrainingGraph(model, { ops: FUSED_OPS, frozen: ['model.q.weight'], gradientAccumulation: true });
    const inputs = train.graph.inputs.map((v) => v.name);
    expect(inputs).not.toContain('model.q.weight');
    expect(train.graph.initializers.map((v) => v.name)).toContain('model.q.weight');
    expect(train.graph.outputs.map((v) => v.name)).not.toContain(GRAD_PREFIX + 'model.q.weight');
    expect(inputs).toContain(GRAD_IN_PREFIX + 'model.embed.weight');
    const params = paramValues(model);
    params.delete('model.q.weight');
    const dims = new Map(model.graph.initializers.map((v) => [v.name, v.initializer!.dims]));
    const ref = await (await session(plain)).run({ ...feeds(params, dims), 'model.q.weight': makeTensor(DataType.DOUBLE, [H, H], paramValues(model).get('model.q.weight')!) });
    const f = feeds(params, dims);
    const acc = new Map<string, number[]>();
    for (const [n, v] of params) acc.set(n, v.map((_, i) => (i % 3) - 1));
    for (const [n, v] of acc) f[GRAD_IN_PREFIX + n] = makeTensor(DataType.DOUBLE, dims.get(n)!, v);
    const out = await (await session(train)).run(f);
    for (const [n, a] of acc) {
      const want = Array.from(ref[GRAD_PREFIX + n].data as Float64Array, (g, i) => g + a[i]);
      const got = Array.from(out[GRAD_PREFIX + n].data as Float64Array);
      got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 12));
    }
  });

  it('rejects unknown, non-float or unreachable parameter names', () => {
    const model = tinyModel();
    expect(() => buildTrainingGraph(model, { ops: FUSED_OPS, trainable: ['nope'] })).toThrow(/trainable parameter 'nope'/);
    expect(() => buildTrainingGraph(model, { ops: FUSED_OPS, trainable: ['model.aux.weight'] })).toThrow(/'model.aux.weight' is not a float initializer the loss depends on/);
    expect(() => buildTrainingGraph(model, { ops: FUSED_OPS, frozen: ['nope'] })).toThrow(/frozen parameter 'nope'/);
    expect(() => buildTrainingGraph(model, { ops: FUSED_OPS, loss: 'nope' })).toThrow(/no value named 'nope'/);
  });
});
