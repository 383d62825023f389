/**
 * lower-softmax-cross-entropy — the ONNX losses that onnxruntime-web's WebGPU EP has no kernel for
 * become ops it runs on the GPU (the plain, unchunked graph: full [N, C] scores; this is the
 * unfused baseline, not a memory optimisation):
 *
 *   m   = floor(max_c x)                   ReduceMax (keepdims) → Floor: no gradient (see below)
 *   s   = x − m                            Sub
 *   lse = log Σ_c exp(s)                   ReduceLogSumExp over the class axis (keepdims)
 *   ℓ   = lse − s[label]                   GatherElements(s, labels[:, None], axis 1) → Sub → Squeeze
 *   loss = reduce(w · ℓ)                   w = weights[label] · [label ≠ ignore_index]
 *
 * with reduction 'none' (w · ℓ), 'sum' (Σ w · ℓ) or 'mean' (Σ w · ℓ / Σ w; Σ ℓ / numel without
 * weights and ignore_index), as ONNX SoftmaxCrossEntropyLoss-13 / NegativeLogLikelihoodLoss-13
 * (https://onnx.ai/onnx/operators/onnx__SoftmaxCrossEntropyLoss.html). Scores [N, C, d1, ...],
 * labels [N, d1, ...] (int32 or int64); SCE's optional log_prob output is s − lse.
 *
 * Variants (one rule, tried in order):
 *   SoftmaxCrossEntropyLoss(x, labels[, weights]) [→ log_prob]    -> the above
 *   NegativeLogLikelihoodLoss(LogSoftmax(x, axis=1), labels[, weights]) -> the above (no log-probs)
 *   NegativeLogLikelihoodLoss(logp, labels[, weights])            -> ℓ = −logp[label], reduced
 *   LogSoftmax(x, axis)                                           -> s − lse along axis
 *
 * Why these ops: the WebGPU EP runs ReduceMax/ReduceLogSumExp/GatherElements/Where/elementwise on
 * the GPU but places LogSoftmax, the loss ops (and their OneHot-style pieces) on the CPU EP, which
 * for a [B·T, 151936] loss means gigabytes in the wasm heap. Every op emitted here has a rule in
 * src/autodiff/table.ts whose backward ops run on the GPU too (Exp/Sub/Mul, ScatterElements add);
 * the label-side ops (Equal, Not, Where, Cast on int [N]) touch only [N]-sized tensors.
 * The max is only for range (exp(s) ≤ e, Σ ≥ 1), and lse − s[label] does not depend on it, so it
 * goes through Floor, whose gradient rule is zero: autodiff builds no ReduceMax backward.
 * The shift is needed: ORT-web 1.30's WebGPU ReduceLogSumExp sums exp(x) unshifted (measured: a row
 * of logits ≈ 5000 gives +Infinity); with s < 1 every term is ≤ e and the sum ≥ 1.
 *
 * 'mean' with nothing counted (every label ignored, or zero weights): ORT's op gives NaN; so does
 * this lowering, but its gradient is zero, as autodiff's SoftmaxCrossEntropyLoss rule gives
 * (loss = Σ w·ℓ / (Σ w or 1) + 0 / Σ w, the second term without a gradient path).
 *
 * Not lowered (stays as it is, with the reason under --explain): opset < 13, a LogSoftmax over an
 * axis other than the class axis under a loss (the LogSoftmax alone is lowered then), unknown or
 * non-float score types, labels other than int32/int64.
 * Class weights get a gradient here if they are trainable parameters (the ONNX ops' rule gives
 * them none); exported models' losses carry no weights.
 */
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Node, Value } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { attrJs, type Match } from '../src/rewrite/matcher.js';
import { outputs, p, v, type Pattern } from '../src/rewrite/pattern.js';
import { defineRule, no, ok, type CheckResult } from '../src/rewrite/rule.js';
import { shapedRulePass } from './fusion-shapes.js';

export const NAME = 'lower-softmax-cross-entropy';

const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);
const INTS = new Set<number>([DataType.INT64, DataType.INT32]);

const x = v('x');
const logp = v('logp');
const labels = v('labels');
const weights = v('weights');

/** SoftmaxCrossEntropyLoss with or without weights, with one or both outputs. */
function sce(withWeights: boolean, logProb: boolean): Pattern {
  const [loss, lp] = p.call('SoftmaxCrossEntropyLoss', withWeights ? [x, labels, weights] : [x, labels], {}, { outputs: logProb ? 2 : 1 });
  return logProb ? outputs(loss, lp) : loss;
}

const nll = (scores: ReturnType<typeof p.LogSoftmax>, withWeights: boolean): Pattern =>
  p.NegativeLogLikelihoodLoss(scores, labels, ...(withWeights ? [weights] : []));

const patterns: Pattern[] = [
  // SoftmaxCrossEntropyLoss(x, labels[, weights]) -> (loss, log_prob)
  sce(true, true),
  sce(false, true),
  // SoftmaxCrossEntropyLoss(x, labels[, weights]) -> loss
  sce(true, false),
  sce(false, false),
  // NegativeLogLikelihoodLoss(LogSoftmax(x), labels[, weights]) -> loss (no log-probs built)
  nll(p.LogSoftmax(x), true),
  nll(p.LogSoftmax(x), false),
  // NegativeLogLikelihoodLoss(logp, labels[, weights]) -> −logp[label], reduced
  nll(logp, true),
  nll(logp, false),
  // LogSoftmax(x) -> x − lse(x)
  p.LogSoftmax(x),
];

type Reduction = 'none' | 'sum' | 'mean';

export interface LowerFacts {
  form: 'sce' | 'log-softmax-nll' | 'nll' | 'log-softmax';
  /** Element type of the scores. */
  elem: number;
  opset: number;
  /** The class axis (1 for the losses; LogSoftmax's axis, as written, for the bare LogSoftmax). */
  axis: number;
  reduction: Reduction;
  ignoreIndex?: number;
  /** SoftmaxCrossEntropyLoss's log_prob output is read. */
  logProb: boolean;
}

const attr = (n: Node, name: string): unknown => attrJs(n.attributes.get(name));
const elemOf = (val: Value | undefined): number | undefined => val?.tensorType?.elemType ?? val?.initializer?.dtype;
const rankOf = (val: Value | undefined): number | undefined => (val?.tensorType?.shape ?? val?.initializer?.dims)?.length;

/** LogSoftmax's axis, or a reason it is not one we lower (opset < 13 flattens to 2-D first). */
function logSoftmaxAxis(n: Node, opset: number): number | string {
  const rank = rankOf(n.inputs[0] ?? undefined);
  const dflt = opset >= 13 ? -1 : 1;
  const axis = (attr(n, 'axis') as number | undefined) ?? dflt;
  if (opset >= 13) return axis;
  // Before 13 the input is coerced to 2-D at `axis`: the same as one axis only for the last.
  if (rank !== undefined && (axis === -1 || axis === rank - 1)) return axis;
  return `LogSoftmax-${opset} over axis ${axis} of a rank-${rank ?? '?'} input (coerced to 2-D) is not lowered`;
}

function check(m: Match): CheckResult<LowerFacts> {
  const root = m.root;
  const opset = m.graph.model.opset('') ?? 0;
  if (opset < 13) return no(`opset ${opset}: the loss ops are lowered from opset 13 on`, root.outputs[0]);
  const scores = m.values.x ?? m.values.logp;
  const elem = elemOf(scores);
  if (elem === undefined || !FLOATS.has(elem)) return no(`scores '${scores.name}' are not of a known float type (${elem ?? 'unknown'})`, scores);
  if (root.opType === 'LogSoftmax') {
    const axis = logSoftmaxAxis(root, opset);
    if (typeof axis === 'string') return no(axis, root.outputs[0]);
    return ok({ form: 'log-softmax', elem, opset, axis, reduction: 'none', logProb: false });
  }
  const le = elemOf(m.values.labels);
  if (le === undefined || !INTS.has(le)) return no(`labels '${m.values.labels.name}' are not int32/int64 (${le ?? 'unknown'})`, m.values.labels);
  if (m.values.weights && elemOf(m.values.weights) !== elem) return no(`weights '${m.values.weights.name}' are not of the scores' type`, m.values.weights);
  const reduction = ((attr(root, 'reduction') as string | undefined) ?? 'mean') as Reduction;
  if (!['none', 'sum', 'mean'].includes(reduction)) return no(`reduction '${reduction}'`, root.outputs[0]);
  const ignoreIndex = attr(root, 'ignore_index') as number | undefined;
  const common = { elem, opset, axis: 1, reduction, ignoreIndex };
  if (root.opType === 'SoftmaxCrossEntropyLoss') return ok({ form: 'sce', ...common, logProb: m.outputs.length === 2 });
  if (m.values.x) {
    const ls = m.nodes.find((n) => n.opType === 'LogSoftmax')!;
    const axis = logSoftmaxAxis(ls, opset);
    const rank = rankOf(m.values.x);
    if (typeof axis === 'string' || !(axis === 1 || (rank !== undefined && axis === 1 - rank)))
      return no(`LogSoftmax over axis ${axis}, not the class axis 1`, ls.outputs[0]);
    return ok({ form: 'log-softmax-nll', ...common, logProb: false });
  }
  return ok({ form: 'nll', ...common, logProb: false });
}

/** ONNX reductions with static axes, as the opset wants them (input from 18; ReduceSum from 13). */
function reduce(b: GraphBuilder, opset: number, opType: string, val: Value, axes: number[] | 'all', keepdims: number): Value {
  if (axes === 'all') return b.op.call(opType, [val], { keepdims })[0];
  if (opset >= 18 || opType === 'ReduceSum') return b.op.call(opType, [val, b.constant(axes)], { keepdims })[0];
  return b.op.call(opType, [val], { axes, keepdims })[0];
}

/** s = x − floor(max x) and lse = log Σ exp(s) along `axis` (both keep the axis). */
function shiftedLse(b: GraphBuilder, f: LowerFacts, scores: Value): { s: Value; lse: Value } {
  const m = b.op.Floor(reduce(b, f.opset, 'ReduceMax', scores, [f.axis], 1));
  const s = b.op.Sub(scores, m);
  return { s, lse: reduce(b, f.opset, 'ReduceLogSumExp', s, [f.axis], 1) };
}

/** Label side, int64 [N, d1, ...] only: the kept positions and labels safe to gather (ignored → 0). */
function labelSide(b: GraphBuilder, f: LowerFacts, y: Value): { valid?: Value; safe: Value } {
  const op = b.op;
  const y64 = elemOf(y) === DataType.INT64 ? y : op.Cast(y, { to: DataType.INT64 });
  if (f.ignoreIndex === undefined) return { safe: y64 };
  const valid = op.Not(op.Equal(y64, b.constant(f.ignoreIndex)));
  return { valid, safe: op.Where(valid, y64, b.constant(0)) };
}

/** The reduced loss from per-position ℓ [N, d1, ...] (the labels' layout). */
function reduceLoss(b: GraphBuilder, f: LowerFacts, perPos: Value, valid: Value | undefined, safe: Value, w: Value | undefined): Value {
  const op = b.op;
  const scalar = (k: number) => b.constant(k, { dtype: f.elem });
  const wpos = w ? op.Gather(w, safe, { axis: 0 }) : undefined;
  let weighted = wpos ? op.Mul(perPos, wpos) : perPos;
  if (valid) weighted = op.Where(valid, weighted, scalar(0));
  if (f.reduction === 'none') return weighted;
  const total = reduce(b, f.opset, 'ReduceSum', weighted, 'all', 0);
  if (f.reduction === 'sum') return total;
  if (!valid && !wpos) return reduce(b, f.opset, 'ReduceMean', perPos, 'all', 0);
  const counted = valid ? (wpos ? op.Where(valid, wpos, scalar(0)) : op.Cast(valid, { to: f.elem })) : wpos!;
  const denom = reduce(b, f.opset, 'ReduceSum', counted, 'all', 0);
  const zero = scalar(0);
  const safeDenom = op.Where(op.Equal(denom, zero), scalar(1), denom);
  // + 0 / Σw: NaN when nothing counts (as ORT's op), with no gradient path (Σw is label-side).
  return op.Add(op.Div(total, safeDenom), op.Div(zero, denom));
}

function rewrite(b: GraphBuilder, m: Match, f: LowerFacts): Value | Value[] {
  const op = b.op;
  if (f.form === 'log-softmax') {
    const { s, lse } = shiftedLse(b, f, m.values.x);
    return op.Sub(s, lse);
  }
  const { valid, safe } = labelSide(b, f, m.values.labels);
  const idx = op.Unsqueeze(safe, b.constant([1]));
  let perPos: Value;
  let logProb: Value | undefined;
  if (f.form === 'nll') {
    perPos = op.Neg(op.Squeeze(op.GatherElements(m.values.logp, idx, { axis: 1 }), b.constant([1])));
  } else {
    const { s, lse } = shiftedLse(b, f, m.values.x);
    perPos = op.Squeeze(op.Sub(lse, op.GatherElements(s, idx, { axis: 1 })), b.constant([1]));
    if (f.logProb) logProb = op.Sub(s, lse);
  }
  const loss = reduceLoss(b, f, perPos, valid, safe, m.values.weights);
  return logProb ? [loss, logProb] : loss;
}

export const lowerSoftmaxCrossEntropy = defineRule<LowerFacts>({ name: NAME, pattern: patterns, check, rewrite });

/** The lower-softmax-cross-entropy pass (infers shapes first where the loss has no types). */
export const lowerSoftmaxCrossEntropyPass = shapedRulePass(NAME, [lowerSoftmaxCrossEntropy],
  ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'LogSoftmax'], []);
