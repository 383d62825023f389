/**
 * Gradients of the ONNX losses, scores laid out [N, C, d1, ...], labels [N, d1, ...].
 * Per position: c = dL/dloss · w[label] · [label ≠ ignore_index], where dL/dloss is dy (reduction
 * none), the scalar dy (sum) or dy / Σ w[label]·[label ≠ ignore] (mean; 1 when nothing counts, so an
 * all-ignored batch gets zero gradient rather than NaN).
 *   NegativeLogLikelihoodLoss:  d input = −c at [n, label, ...], 0 elsewhere
 *   SoftmaxCrossEntropyLoss:    d scores = softmax(scores)·c − c at [n, label, ...]
 * The softmax is exp(log_prob) when that output exists, else recomputed from the scores.
 * Class weights get no gradient. The one-hot is never built: a ScatterElements over axis 1 adds −c.
 */
import type { Value } from '../../ir/graph.js';
import type { GradContext, GradFn, GradRule } from '../types.js';

const INT64 = 7;

interface Coef {
  /** c, shaped like the labels, scores' element type. */
  coef: Value;
  /** Labels with ignored positions replaced by 0 (int64). */
  safe: Value;
}

function lossCoef(g: GradContext): Coef {
  const op = g.op;
  const t = g.elemTypeX(0);
  const labels = g.elemTypeX(1) === INT64 ? g.x(1) : op.Cast(g.x(1), { to: INT64 });
  const ignore = g.node.attr('ignore_index') ? g.node.attrInt('ignore_index') : undefined;
  const valid = ignore === undefined ? undefined : op.Not(op.Equal(labels, g.ints(ignore)));
  const safe = valid ? op.Where(valid, labels, g.ints(0)) : labels;
  const w = g.node.inputs[2] ? op.Gather(g.x(2), safe, { axis: 0 }) : undefined;
  // per-position weight (undefined = all ones)
  let wv: Value | undefined = w;
  if (valid) wv = w ? op.Where(valid, w, g.scalar(0, t)) : op.Cast(valid, { to: t });
  const reduction = g.node.attrString('reduction', 'mean');
  const dy = g.dy();
  let scale: Value;
  if (reduction === 'none') scale = dy;
  else if (reduction === 'sum') scale = dy;
  else if (reduction === 'mean') {
    const denom = wv
      ? op.ReduceSum(wv, { keepdims: 0 })
      : op.Cast(op.ReduceProd(op.Shape(labels), { keepdims: 0 }), { to: t });
    const zero = g.scalar(0, t);
    const safeDenom = op.Where(op.Equal(denom, zero), g.scalar(1, t), denom);
    scale = op.Div(dy, safeDenom);
  } else return g.unsupported(`reduction '${reduction}'`);
  const coef = wv ? op.Mul(scale, wv) : op.Expand(scale, op.Shape(labels));
  return { coef, safe };
}

const nllGrad: GradFn = (g) => {
  if (g.opset < 13) g.unsupported('NegativeLogLikelihoodLoss before opset 13');
  const { coef, safe } = lossCoef(g);
  const op = g.op;
  const idx = op.Unsqueeze(safe, g.ints([1]));
  const upd = op.Unsqueeze(op.Neg(coef), g.ints([1]));
  return op.ScatterElements(g.zerosLikeX(0), idx, upd, { axis: 1 });
};

const sceGrad: GradFn = (g) => {
  if (g.opset < 13) g.unsupported('SoftmaxCrossEntropyLoss before opset 13');
  const op = g.op;
  const hasLogProb = g.node.outputs[1] !== undefined;
  const p = hasLogProb ? op.Exp(g.y(1)) : op.Softmax(g.x(0), { axis: 1 });
  let grad: Value | undefined;
  if (g.hasDy(0)) {
    const { coef, safe } = lossCoef(g);
    const idx = op.Unsqueeze(safe, g.ints([1]));
    const c1 = op.Unsqueeze(coef, g.ints([1]));
    grad = op.ScatterElements(op.Mul(p, c1), idx, op.Neg(c1), { axis: 1, reduction: 'add' });
  }
  if (hasLogProb && g.hasDy(1)) {
    // log_prob read downstream too: add the LogSoftmax backward of its gradient.
    const d = g.dy(1);
    const back = op.Sub(d, op.Mul(p, op.ReduceSum(d, g.ints([1]), { keepdims: 1 })));
    grad = grad ? op.Add(grad, back) : back;
  }
  return grad;
};

export const lossRules: Record<string, GradRule> = {
  NegativeLogLikelihoodLoss: { save: { inputs: [1, 2] }, grads: [nllGrad] },
  // Scores are read only when the log_prob output is absent (softmax recomputed).
  SoftmaxCrossEntropyLoss: { save: { inputs: [0, 1, 2], outputs: [1] }, grads: [sceGrad] },
};
