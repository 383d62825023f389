/**
 * fuse-linear-cross-entropy and drop-logits: each lm_head form, Cast, label shift and loss form
 * (SoftmaxCrossEntropyLoss, LogSoftmax | Log(Softmax) + NLL, −GatherElements reduced or not), every
 * reduction and ignore_index, built with the op builder; numerics of the fused model (portable 'cpu'
 * body) against the unfused one in onnxruntime-node with graph optimisations disabled. Near misses
 * must not fuse.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../custom-ops/functions.js';
import { randn, relErr, rng } from '../custom-ops/testing.js';
import type { Target } from '../src/fused/types.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { checkModel } from '../src/ir/checker.js';
import type { Model, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { opCounts, runOrt } from '../src/rewrite/testing.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { fuseLinearCrossEntropyPass, NAME } from './fuse-linear-cross-entropy.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const [B, S, H, V] = [3, 7, 16, 300];
const IGNORE = -100;

interface Spec {
  /** lm_head form. */
  head?: 'transpose' | 'gemm' | 'hv' | 'gemm-hv';
  bias?: 'add' | 'gemm';
  /** Compute in float64 and Cast the logits to float. */
  cast?: boolean;
  /** Share the weight with an embedding Gather (tied). */
  tied?: boolean;
  /** 'pad': Pad(labels, -100) + Slice(1:) (HF); 'slice': logits[:, :-1], labels[:, 1:]; 'none'. */
  shift?: 'pad' | 'slice' | 'none';
  loss: 'sce' | 'nll' | 'log-softmax-nll' | 'gather-mean' | 'gather-neg-sum' | 'gather-none';
  reduction?: 'mean' | 'sum' | 'none';
  ignoreIndex?: number;
  /** Also return the logits. */
  logitsOutput?: boolean;
}

/** The unfused graph: inputs x [B, S, H] (or [B*S, H] for Gemm), ids, labels [B, S]; outputs loss (+ logits). */
function build(s: Spec): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const op = b.op;
  const gemm = s.head === 'gemm' || s.head === 'gemm-hv';
  const T = s.cast ? DataType.DOUBLE : F;
  const x = b.input('x', F, gemm ? [B * S, H] : [B, S, H]);
  const ids = b.input('ids', I64, gemm ? [B * S] : [B, S]);
  const labels = b.input('labels', I64, [B, S]);
  const r = rng(11);
  const hv = s.head === 'hv' || s.head === 'gemm-hv';
  const W = b.initializer('lm_head.weight', Tensor.from(T, hv ? [H, V] : [V, H], randn(r, V * H, 0.3)));
  let h: Value = s.cast ? op.Cast(x, { to: T }) : x;
  if (s.tied) h = op.Add(h, op.Gather(W, ids, { axis: 0 }));
  const bias = s.bias ? b.initializer('lm_head.bias', Tensor.from(T, [V], randn(r, V, 0.1))) : null;
  let z: Value;
  if (gemm) z = op.Gemm(h, W, s.bias === 'gemm' ? bias : null, { transB: hv ? 0 : 1 });
  else z = op.MatMul(h, hv ? W : op.Transpose(W, { perm: [1, 0] }));
  if (s.bias === 'add') z = op.Add(z, bias!);
  const logits = z;
  if (s.cast) z = op.Cast(z, { to: F });
  const shift = s.shift ?? 'pad';
  let y: Value = labels;
  if (shift === 'pad') y = op.Slice(op.Pad(labels, b.constant([0, 0, 0, 1]), b.constant(IGNORE), { mode: 'constant' }), b.constant([1]), b.constant([2 ** 62]), b.constant([1]));
  if (shift === 'slice') {
    y = op.Slice(labels, b.constant([1]), b.constant([2 ** 62]), b.constant([1]));
    z = op.Slice(z, b.constant([0]), b.constant([-1]), b.constant([1]));
  }
  const y1 = op.Reshape(y, b.constant([-1]));
  const flat = (t: Value) => (gemm && shift !== 'slice' ? t : op.Reshape(t, b.constant([-1, V])));
  const attrs = { ignore_index: s.ignoreIndex ?? IGNORE, reduction: s.reduction ?? 'mean' };
  let loss: Value;
  switch (s.loss) {
    case 'sce': loss = op.SoftmaxCrossEntropyLoss(flat(z), y1, attrs); break;
    case 'nll': loss = op.NegativeLogLikelihoodLoss(flat(op.LogSoftmax(z, { axis: -1 })), y1, attrs); break;
    case 'log-softmax-nll': loss = op.NegativeLogLikelihoodLoss(op.Log(op.Softmax(flat(z), { axis: 1 })), y1, attrs); break;
    default: {
      const g = op.GatherElements(op.LogSoftmax(flat(z), { axis: -1 }), op.Unsqueeze(y1, b.constant([1])), { axis: 1 });
      if (s.loss === 'gather-mean') loss = op.ReduceMean(op.Neg(op.Squeeze(g, b.constant([1]))), { keepdims: 0 });
      else if (s.loss === 'gather-neg-sum') loss = op.Neg(op.ReduceSum(g, { keepdims: 0 }));
      else loss = op.Neg(g);
    }
  }
  b.output(loss, 'loss');
  if (s.logitsOutput) b.output(logits, 'logits');
  return m;
}

/** Feeds: labels uniform in [0, V) with every 5th set to ignore (labels stay valid for gather forms when ignore is null). */
function feeds(s: Spec): Record<string, ort.Tensor> {
  const r = rng(5);
  const gemm = s.head === 'gemm' || s.head === 'gemm-hv';
  const ignore = s.loss.startsWith('gather') ? null : s.ignoreIndex ?? IGNORE;
  const lab = Array.from({ length: B * S }, (_, i) => (ignore !== null && i % 5 === 2 ? ignore : Math.floor(r() * V)));
  return {
    x: new ort.Tensor('float32', randn(r, B * S * H), gemm ? [B * S, H] : [B, S, H]),
    ids: new ort.Tensor('int64', BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 37) % V)), gemm ? [B * S] : [B, S]),
    labels: new ort.Tensor('int64', BigInt64Array.from(lab, BigInt), [B, S]),
  };
}

async function fuse(m: Model, f: Record<string, ort.Tensor>, target: Target = 'cpu') {
  const want = await runOrt(m, f);
  const ctx = newContext({}, true);
  const result = fuseLinearCrossEntropyPass.run(m, ctx);
  const problems = checkModel(m);
  const second = fuseLinearCrossEntropyPass.run(m, newContext());
  ensureFunctions(m, target);
  const got = await runOrt(m, f);
  const errors = got.map((t, i) => {
    expect(t.dims).toEqual(want[i].dims);
    return relErr(Array.from(t.data as ArrayLike<number | bigint>, Number), Array.from(want[i].data as ArrayLike<number | bigint>, Number));
  });
  return { result, second, problems, errors, ops: opCounts(m), explanations: ctx.explanations, want };
}

const VARIANTS: [string, Spec][] = [
  ['Transpose+MatMul, SCE mean, HF Pad/Slice shift, logits output (torch export)', { loss: 'sce', logitsOutput: true }],
  ['tied embedding, SCE sum, no shift', { loss: 'sce', tied: true, reduction: 'sum', shift: 'none' }],
  ['Gemm transB=1 with bias C, SCE none', { loss: 'sce', head: 'gemm', bias: 'gemm', reduction: 'none' }],
  ['Gemm with an [H, V] weight, SCE mean, ignore_index 7', { loss: 'sce', head: 'gemm-hv', ignoreIndex: 7 }],
  ['MatMul with an [H, V] weight + Add(bias), SCE mean', { loss: 'sce', head: 'hv', bias: 'add', logitsOutput: true }],
  ['float64 lm_head + Cast to float, SCE mean', { loss: 'sce', cast: true }],
  ['LogSoftmax + NLL, logits[:, :-1] / labels[:, 1:] shift, mean', { loss: 'nll', shift: 'slice', logitsOutput: true }],
  ['Cast then logits shift, LogSoftmax + NLL sum', { loss: 'nll', shift: 'slice', cast: true, reduction: 'sum' }],
  ['Log(Softmax) after the Reshape + NLL none, ignore_index 3', { loss: 'log-softmax-nll', reduction: 'none', ignoreIndex: 3 }],
  ['ReduceMean(Neg(Squeeze(GatherElements(LogSoftmax))))', { loss: 'gather-mean' }],
  ['Neg(ReduceSum(GatherElements(LogSoftmax)))', { loss: 'gather-neg-sum', shift: 'none' }],
  ['Neg(GatherElements(LogSoftmax)) per row [N, 1]', { loss: 'gather-none', shift: 'none' }],
];

describe('fuse-linear-cross-entropy: variants vs onnxruntime-node', () => {
  for (const [title, spec] of VARIANTS)
    it(title, async () => {
      const m = build(spec);
      const r = await fuse(m, feeds(spec));
      expect(r.result.counts).toEqual({ [NAME]: 1 });
      expect(r.problems).toEqual([]);
      expect(r.second).toEqual({ modified: false, counts: {} });
      expect(r.ops.FusedLinearCrossEntropy).toBe(1);
      for (const gone of ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'LogSoftmax', 'Softmax', 'GatherElements', 'Neg'])
        expect(r.ops[gone] ?? 0, gone).toBe(0);
      // The lm_head product stays only for a logits output.
      expect((r.ops.MatMul ?? 0) + (r.ops.Gemm ?? 0)).toBe(spec.logitsOutput ? 1 : 0);
      r.errors.forEach((e) => expect(e).toBeLessThan(1e-5));
      const fused = m.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropy')!;
      expect(fused.extra.metadata_props?.[0].value).toBe(NAME);
      const reduction = { 'gather-neg-sum': 'sum', 'gather-none': 'none' }[spec.loss as string] ?? spec.reduction ?? 'mean';
      expect(fused.attrString('reduction')).toBe(reduction);
    });

  it('the webgpu (Loop-free) body gives the same loss', async () => {
    const spec: Spec = { loss: 'nll', shift: 'slice' };
    const r = await fuse(build(spec), feeds(spec), 'webgpu');
    expect(r.ops.FusedLinearCrossEntropy).toBe(1);
    expect(r.errors[0]).toBeLessThan(1e-5);
  });
});

describe('fuse-linear-cross-entropy: near misses stay unfused', () => {
  const unfused = async (m: Model, reason: RegExp) => {
    const r = await fuse(m, feeds({ loss: 'sce' }));
    expect(r.result).toEqual({ modified: false, counts: {} });
    expect(r.ops.FusedLinearCrossEntropy ?? 0).toBe(0);
    r.errors.forEach((e) => expect(e).toBe(0));
    const e = r.explanations.find((x) => x.rule === NAME);
    expect(e?.reason).toMatch(reason);
  };
  /** The HF graph with `edit(b, logits, labels1d)` returning the loss. */
  const tail = (edit: (b: GraphBuilder, z: Value, y: Value) => Value[]) => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [B, S, H]);
    b.input('ids', I64, [B, S]);
    const labels = b.input('labels', I64, [B, S]);
    const W = b.initializer('w', Tensor.from(F, [V, H], randn(rng(3), V * H, 0.3)));
    const z = b.op.MatMul(x, b.op.Transpose(W, { perm: [1, 0] }));
    edit(b, z, b.op.Reshape(labels, b.constant([-1]))).forEach((o, i) => b.output(o, `y${i}`));
    return m;
  };
  const sce = (b: GraphBuilder, t: Value, y: Value) => b.op.SoftmaxCrossEntropyLoss(b.op.Reshape(t, b.constant([-1, V])), y, { ignore_index: IGNORE });

  it('logits with a second reader in the graph (ArgMax)', () =>
    unfused(tail((b, z, y) => [sce(b, z, y), b.op.ArgMax(z, { axis: -1 })]), /also read by .*ArgMax/));

  it('a loss over another tensor than the logits (Relu(logits))', () =>
    unfused(tail((b, z, y) => [sce(b, b.op.Relu(z), y)]), /expected (MatMul|Add|Gemm|Cast|Slice)/));

  it('logits plus a [B, S, V] tensor is no bias', () =>
    unfused(tail((b, z, y) => [sce(b, b.op.Add(z, b.op.MatMul(b.graph.inputs[0], b.constant(Array.from({ length: H * V }, (_, i) => (i % 13) / 13), { dims: [H, V], dtype: F }))), y)]), /not a vector/));

  it('LogSoftmax over the sequence axis (wrong axis)', () =>
    unfused(tail((b, z, y) => [b.op.NegativeLogLikelihoodLoss(b.op.Reshape(b.op.LogSoftmax(z, { axis: 1 }), b.constant([-1, V])), y, { ignore_index: IGNORE })]), /axis 1/));

  it('SoftmaxCrossEntropyLoss on 3-D logits (classes on axis 1)', () =>
    unfused(tail((b, z) => [b.op.SoftmaxCrossEntropyLoss(z, b.constant(Array(B * V).fill(0), { dims: [B, V], dtype: I64 }))]), /rank-3 logits/));

  it('class weights on the loss', () =>
    unfused(tail((b, z, y) => [b.op.SoftmaxCrossEntropyLoss(b.op.Reshape(z, b.constant([-1, V])), y, b.constant(Array.from({ length: V }, (_, i) => 1 + i / V), { dtype: F }))]), /inputs/));
});

describe('drop-logits', () => {
  it('training drops the logits beside the fused loss; dce removes the lm_head MatMul', async () => {
    const spec: Spec = { loss: 'sce', logitsOutput: true };
    const m = build(spec);
    const f = feeds(spec);
    const [want] = await runOrt(m, f);
    const report = runPipeline(m, defaultPipeline(), { checkEachPass: true, options: { training: true } });
    const counts = Object.assign({}, ...report.passes.map((p) => p.counts));
    expect(counts).toMatchObject({ [NAME]: 1, 'drop-logits': 1 });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss']);
    expect(opCounts(m).MatMul ?? 0).toBe(0);
    ensureFunctions(m, 'cpu');
    const [got] = await runOrt(m, f);
    expect(relErr(got.data as Float32Array, want.data as Float32Array)).toBeLessThan(1e-5);
  });

  it('without training (or dropLogits) every output stays', () => {
    const m = build({ loss: 'sce', logitsOutput: true });
    const report = runPipeline(m, defaultPipeline(), { checkEachPass: true });
    expect(report.passes.find((p) => p.name === 'drop-logits')).toMatchObject({ modified: false, counts: {} });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss', 'logits']);
    expect(opCounts(m).MatMul).toBe(1);
    const d = build({ loss: 'sce', logitsOutput: true });
    runPipeline(d, defaultPipeline(), { options: { dropLogits: true } });
    expect(d.graph.outputs.map((o) => o.name)).toEqual(['loss']);
  });

  it('keeps an output that is not the fused loss’s logits', () => {
    const m = build({ loss: 'sce' });
    const b = new GraphBuilder(m.graph);
    const other = b.initializer('other', Tensor.from(F, [H, V], randn(rng(9), H * V)));
    b.output(b.op.MatMul(m.graph.inputs[0], other), 'not_logits');
    runPipeline(m, defaultPipeline(), { options: { training: true } });
    expect(opCounts(m).FusedLinearCrossEntropy).toBe(1);
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['loss', 'not_logits']);
  });
});
