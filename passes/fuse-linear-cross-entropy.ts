/**
 * fuse-linear-cross-entropy — the lm_head projection and the cross-entropy loss become one op, so
 * the [N, V] logits (and their softmax) are never materialised by the loss:
 *
 *   z = h · Wᵀ (+ b)                       h [..., H], W [V, H] (nn.Linear layout)
 *   loss = CE(rows of z, labels)           ignore_index, reduction 'mean' | 'sum' | 'none'
 *     →  ai.ortfuse.FusedLinearCrossEntropy(Reshape(h, [-1, H]), W, b, labels)
 *
 * Cross-entropy as torch.nn.functional.cross_entropy
 * (https://pytorch.org/docs/stable/generated/torch.nn.functional.cross_entropy.html) and ONNX
 * SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss
 * (https://onnx.ai/onnx/operators/onnx__SoftmaxCrossEntropyLoss.html); op in
 * custom-ops/fused-linear-cross-entropy/schema.ts.
 *
 * Matched: the lm_head as Transpose(W, [1,0]) → MatMul, Gemm(transB=1), or MatMul/Gemm with a
 * weight stored [H, V] (a Transpose of the weight is inserted), [+ Add(bias [V])], tied or not;
 * an optional Cast to float before and/or after a logits shift Slice (`logits[:, :-1]`, on
 * non-vocab axes: replayed on h); the Reshape to [-1, V]; then SoftmaxCrossEntropyLoss, or
 * LogSoftmax | Log(Softmax) then NegativeLogLikelihoodLoss or −GatherElements(·, labels[:, None])
 * reduced by ReduceMean / ReduceSum (or not: 'none'). The label path (Pad(-100) + Slice(1:),
 * Slice(1:), or none) is not rewritten: the loss's own (flattened) labels feed the fused op, so any
 * label shift stays exactly as exported. No ONNX loss op carries label smoothing: it stays 0.
 *
 * Logits policy: the lm_head node is kept when the logits are a graph output (the fused loss then
 * recomputes them chunk by chunk; `drop-logits` removes that output in training pipelines, and
 * dce the MatMul). When another node in the graph reads the logits, nothing is fused: they exist
 * anyway, and fusing would compute the lm_head twice.
 *
 * Not fused: class weights on the loss, a softmax over another axis than the vocab, a shift on
 * the vocab axis, a Reshape that does not keep rows of V, a loss over logits that are not one
 * 2-D lm_head (a 3-D weight, a batched product), a float16 loss without the Cast to float (the
 * fused loss is float32), and (the matcher's rule) intermediates read outside the pattern.
 */
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { Node, Value } from '../src/ir/graph.js';
import type { GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/onnx/schema.js';
import { constantNumbers } from '../src/rewrite/constant.js';
import { attrJs } from '../src/rewrite/matcher.js';
import { named, opt, or, p, shared, v, type PValue } from '../src/rewrite/pattern.js';
import { defineRule, no, ok, type CheckResult } from '../src/rewrite/rule.js';
import type { Match } from '../src/rewrite/matcher.js';
import { shapedRulePass } from './fusion-shapes.js';

export const NAME = 'fuse-linear-cross-entropy';
const F = DataType.FLOAT;
/** ignore_index for loss forms without one (the gather forms, SoftmaxCrossEntropyLoss without the attribute): no class index in [-V, V) equals it. */
export const NO_IGNORE_INDEX = -2147483648;

const h = v('h');
const w = v('w'); // [V, H]
const wt = v('wt'); // [H, V]
const gemmOk = { transA: (t: unknown) => ((t as number | undefined) ?? 0) === 0 };

/** The lm_head: logits = h · Wᵀ (+ bias), captured as 'logits' (shared: it may be a graph output). */
function lmHead(): PValue {
  const lin = [
    shared(p.MatMul(h, shared(p.Transpose(w, { perm: [1, 0] })))), // MatMul(h, Transpose(W)) -> z (torch export)
    shared(p.Gemm(h, w, v(), { ...gemmOk, transB: 1 })), // Gemm(h, W, [bias], transB=1) -> z
    shared(p.MatMul(h, wt)), // MatMul(h, W_hv) -> z (weight stored [H, V])
    shared(p.Gemm(h, wt, v(), { ...gemmOk, transB: (t: unknown) => ((t as number | undefined) ?? 0) === 0 })), // Gemm(h, W_hv, [bias]) -> z
  ];
  // Add(z, bias) -> z
  return named('logits', or([...lin.map((l) => shared(p.Add(l, v('bias')))), ...lin]));
}

/** lm_head → [Cast] → [Slice (logits shift)] → [Cast]. */
function logitsPath(): PValue {
  return opt(p.Cast(opt(p.Slice(opt(p.Cast(lmHead(), { to: F })), v(), v(), v(), v())), { to: F }));
}

const flat = (x: PValue): PValue => opt(p.Reshape(x, v()));
// LogSoftmax(z) | Log(Softmax(z)) -> log-probabilities
const logSoftmax = (x: PValue): PValue => or([p.LogSoftmax(x), p.Log(p.Softmax(x))]);
// log-probabilities of the flattened logits, normalised before or after the Reshape
const logProbs = (): PValue => or([flat(logSoftmax(logitsPath())), logSoftmax(p.Reshape(logitsPath(), v()))]);
const labels = v('labels');
// −GatherElements(logp, idx [N,1], axis=1) [Squeeze] -> per-row loss
const picked = (): PValue => named('picked', opt(p.Squeeze(named('gathered', p.GatherElements(logProbs(), v('idx'))), v())));

const patterns = [
  // SoftmaxCrossEntropyLoss(Reshape(z, [-1, V]), labels) -> FLCE
  p.SoftmaxCrossEntropyLoss(flat(logitsPath()), labels),
  // NegativeLogLikelihoodLoss(LogSoftmax(z) flattened, labels) -> FLCE
  p.NegativeLogLikelihoodLoss(logProbs(), labels),
  // ReduceMean|ReduceSum(Neg(gathered)) -> FLCE(mean|sum)
  named('reduce', p.ReduceMean(p.Neg(picked()), v())),
  named('reduce', p.ReduceSum(p.Neg(picked()), v())),
  // Neg(ReduceMean|ReduceSum(gathered)) -> FLCE(mean|sum)
  p.Neg(named('reduce', p.ReduceMean(picked(), v()))),
  p.Neg(named('reduce', p.ReduceSum(picked(), v()))),
  // Neg(gathered) -> FLCE(none)
  p.Neg(picked()),
];

export interface LinearCEFacts {
  weight: Value;
  /** The weight is stored [H, V]: transpose it for the fused op. */
  transpose: boolean;
  bias: Value | null;
  hDim: number;
  /** The logits shift Slice, replayed on h. */
  slice?: Node;
  labels: Value;
  ignoreIndex: number;
  reduction: 'mean' | 'sum' | 'none';
  /** 'none' from a gather without Squeeze: the loss is [N, 1]. */
  unsqueeze: boolean;
}

const attr = (n: Node, name: string): unknown => attrJs(n.attributes.get(name));
/** A value's shape; an initializer's own dims where the model gives it no type (loaded external data). */
const shapeOf = (x: Value | null | undefined) => x?.tensorType?.shape ?? x?.initializer?.dims;
const elemOf = (x: Value) => x.tensorType?.elemType ?? x.initializer?.dtype;
const isLast = (axis: number, rank: number | undefined) => axis === -1 || (rank !== undefined && axis === rank - 1);

function checkLinearCE(m: Match): CheckResult<LinearCEFacts> {
  const { logits } = m.values;
  const model = m.graph.model;
  // Policy: another reader of the logits inside the graph → keep the unfused graph.
  const inside = new Set(m.nodes);
  const other = logits.uses().find((u) => !inside.has(u.node));
  if (other) return no(`the logits are also read by ${other.node.label}: not fused (the lm_head would run twice)`, logits);

  // The lm_head and its weight, in [V, H].
  let lin = logits.producer!;
  let bias: Value | null = null;
  if (lin.opType === 'Add') {
    bias = m.values.bias;
    lin = lin.inputs.find((x) => x !== bias)!.producer!;
  }
  if (lin.opType === 'Gemm') {
    const alpha = (attr(lin, 'alpha') as number | undefined) ?? 1;
    const beta = (attr(lin, 'beta') as number | undefined) ?? 1;
    if (alpha !== 1 || (lin.inputs[2] && beta !== 1)) return no(`Gemm alpha=${alpha} beta=${beta}: only 1 is fused`, logits);
    if (lin.inputs[2]) {
      if (bias) return no('a Gemm bias and an Add bias', logits);
      bias = lin.inputs[2];
    }
  }
  const transpose = !m.values.w;
  const weight = m.values.w ?? m.values.wt;
  const ws = shapeOf(weight);
  if (!ws || ws.length !== 2 || typeof ws[0] !== 'number' || typeof ws[1] !== 'number') return no('the lm_head weight is not 2-D with static dims', weight);
  const [V, H] = transpose ? [ws[1], ws[0]] : [ws[0], ws[1]];
  const hs = shapeOf(m.values.h);
  if (!hs || hs.length < 2) return no('the hidden states are not of known rank >= 2', m.values.h);
  if (bias) {
    const bs = shapeOf(bias);
    if (!bs || bs.length !== 1 || bs[0] !== V) return no(`the bias is not a vector [${V}]`, bias);
  }
  const rank = hs.length;

  // The logits path: shift Slice, Reshapes, softmax axes, element types.
  let slice: Node | undefined;
  let rank2 = false; // the loss input is known to be [N, V]
  let casted = false;
  for (const n of m.nodes) {
    if (n.opType === 'Cast') casted = true;
    if (n.opType === 'Slice' && n.inputs[0] !== null) {
      slice = n;
      const starts = constantNumbers(n.inputs[1], 8);
      const axes = n.inputs[3] ? constantNumbers(n.inputs[3], 8) : starts?.map((_, i) => i);
      if (!axes) return no('the logits Slice has non-constant axes', n.outputs[0]);
      if (axes.some((a) => isLast(a, rank) || !(a >= -rank && a < rank))) return no(`the logits Slice cuts axes [${axes}], including the vocab axis`, n.outputs[0]);
    }
    if (n.opType === 'Reshape') {
      const s = constantNumbers(n.inputs[1], 8);
      if (!s || s.length !== 2 || s[1] !== V || s[0] === 0) return no(`Reshape to [${s ?? '?'}] does not keep rows of ${V} logits`, n.outputs[0]);
      rank2 = true;
    }
    if (n.opType === 'LogSoftmax' || n.opType === 'Softmax') {
      const r = shapeOf(n.inputs[0])?.length;
      const axis = (attr(n, 'axis') as number | undefined) ?? ((model.opset() ?? 13) >= 13 ? -1 : 1);
      if (!isLast(axis, r)) return no(`${n.opType} over axis ${axis} of a rank-${r ?? '?'} tensor, not the vocab axis`, n.outputs[0]);
    }
  }
  if (!rank2 && rank !== 2) return no(`the loss reads rank-${rank} logits without a Reshape to [-1, ${V}] (classes would be axis 1)`, logits);
  const elem = casted ? F : elemOf(weight);
  if (elem !== F) return no('the loss is not computed in float32 (no Cast to float)', logits);

  // The loss: labels, ignore_index, reduction.
  const root = m.root;
  const reduce = m.values.reduce?.producer;
  if (root.opType === 'SoftmaxCrossEntropyLoss' || root.opType === 'NegativeLogLikelihoodLoss') {
    const ls = shapeOf(m.values.labels);
    const le = m.values.labels.tensorType?.elemType;
    if (!ls || ls.length !== 1 || (le !== DataType.INT64 && le !== DataType.INT32)) return no('the labels are not a 1-D int64/int32 tensor [N]', m.values.labels);
    const reduction = ((attr(root, 'reduction') as string | undefined) ?? 'mean') as LinearCEFacts['reduction'];
    const ignore = attr(root, 'ignore_index') as number | undefined;
    return ok({ weight, transpose, bias, hDim: H, slice, labels: m.values.labels, ignoreIndex: ignore ?? NO_IGNORE_INDEX, reduction, unsqueeze: false });
  }
  // Gather forms.
  const g = m.values.gathered.producer!;
  const gaxis = (attr(g, 'axis') as number | undefined) ?? 0;
  if (gaxis !== 1 && gaxis !== -1) return no(`GatherElements along axis ${gaxis}, not the vocab axis`, g.outputs[0]);
  const is = shapeOf(m.values.idx);
  if (!is || is.length !== 2 || is[1] !== 1) return no('the gathered indices are not [N, 1]', m.values.idx);
  const squeezed = m.values.picked !== m.values.gathered;
  if (squeezed) {
    const sq = m.values.picked.producer!;
    const axes = sq.inputs[1] ? constantNumbers(sq.inputs[1], 4) : (attr(sq, 'axes') as number[] | undefined);
    if (!axes || axes.length !== 1 || (axes[0] !== 1 && axes[0] !== -1)) return no('Squeeze of the picked log-probabilities is not over axis 1', sq.outputs[0]);
  }
  let reduction: LinearCEFacts['reduction'] = 'none';
  if (reduce) {
    const axes = reduce.inputs[1] ? constantNumbers(reduce.inputs[1], 4) : (attr(reduce, 'axes') as number[] | undefined);
    const r = squeezed ? 1 : 2;
    const all = !axes || axes.length === 0 ? ((attr(reduce, 'noop_with_empty_axes') as number | undefined) ?? 0) === 0
      : new Set(axes.map((a) => (a < 0 ? a + r : a))).size === r;
    if (!all || ((attr(reduce, 'keepdims') as number | undefined) ?? 1) !== 0) return no(`${reduce.opType} does not reduce every axis to a scalar (keepdims=0)`, reduce.outputs[0]);
    reduction = reduce.opType === 'ReduceMean' ? 'mean' : 'sum';
  }
  return ok({ weight, transpose, bias, hDim: H, slice, labels: m.values.idx, ignoreIndex: NO_IGNORE_INDEX, reduction, unsqueeze: reduction === 'none' && !squeezed });
}

function rewriteLinearCE(b: GraphBuilder, m: Match, f: LinearCEFacts): Value {
  const op = b.op;
  let hidden = m.values.h;
  if (f.slice) hidden = op.Slice(hidden, ...f.slice.inputs.slice(1));
  hidden = op.Reshape(hidden, b.constant([-1, f.hDim]));
  const weight = f.transpose ? op.Transpose(f.weight, { perm: [1, 0] }) : f.weight;
  let labels = f.labels;
  if ((shapeOf(labels)?.length ?? 1) !== 1) labels = op.Reshape(labels, b.constant([-1]));
  if (labels.tensorType?.elemType === DataType.INT32) labels = op.Cast(labels, { to: DataType.INT64 });
  const [loss] = op.call('FusedLinearCrossEntropy', [hidden, weight, f.bias, labels], {
    ignore_index: f.ignoreIndex, reduction: f.reduction,
  }, { domain: ORTFUSE_DOMAIN });
  return f.unsqueeze ? op.Unsqueeze(loss, b.constant([1])) : loss;
}

export const fuseLinearCrossEntropy = defineRule<LinearCEFacts>({ name: NAME, pattern: patterns, check: checkLinearCE, rewrite: rewriteLinearCE });

/** The fuse-linear-cross-entropy pass (infers shapes first where the loss has none). */
export const fuseLinearCrossEntropyPass = shapedRulePass(NAME, [fuseLinearCrossEntropy],
  ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'GatherElements'], ['FusedLinearCrossEntropy']);
