/**
 * Gradients of reductions and of Softmax / LogSoftmax.
 *   ReduceSum:  dx = expand(dy)            ReduceMean: dx = expand(dy) / n
 *   ReduceMax/Min: dx = expand(dy) · [x = y] / (number of ties)   (torch amax convention)
 *   ReduceLogSumExp: dx = expand(dy) · exp(x − y)
 *   Softmax:    dx = y · (dy − Σ dy·y)      LogSoftmax: dx = dy − exp(y) · Σ dy
 * "expand" re-inserts reduced axes when keepdims = 0 (Unsqueeze accepts the same negative axes) and
 * broadcasts to x's runtime shape, so no rank is needed.
 */
import type { Value } from '../../ir/graph.js';
import type { GradContext, GradRule } from '../types.js';

/** Reduction axes: a static list, a runtime value, 'all', or 'none' (noop_with_empty_axes). */
type Axes = number[] | Value | 'all' | 'none';

function reduceAxes(g: GradContext): Axes {
  const n = g.node;
  const attrAxes = n.attr('axes');
  if (attrAxes) {
    const a = n.attrInts('axes');
    return a.length ? a : 'all';
  }
  const input = n.inputs[1];
  if (!input) return n.attrInt('noop_with_empty_axes', 0) ? 'none' : 'all';
  const c = g.constX(1);
  if (c) return c.length ? c : n.attrInt('noop_with_empty_axes', 0) ? 'none' : 'all';
  return input; // runtime axes: assume non-empty
}

/** dy re-shaped to broadcast against x (reduced axes back as size 1). */
function keepShape(g: GradContext, dy: Value, axes: Axes): Value {
  if (g.node.attrInt('keepdims', 1) === 1 || axes === 'all' || axes === 'none') return dy; // 'all' with keepdims=0: dy is 0-D
  return g.unsqueeze(dy, axes);
}

function expandToX(g: GradContext, v: Value): Value {
  return g.op.Expand(v, g.shapeX(0));
}

const reduceSum = (g: GradContext): Value => {
  const axes = reduceAxes(g);
  if (axes === 'none') return g.dy();
  return expandToX(g, keepShape(g, g.dy(), axes));
};

const reduceMean = (g: GradContext): Value => {
  const axes = reduceAxes(g);
  if (axes === 'none') return g.dy();
  const t = g.elemTypeX(0);
  // n = numel(x) / numel(y), from runtime shapes (works with symbolic dims)
  const count = g.op.Div(g.op.ReduceProd(g.shapeX(0), { keepdims: 0 }), g.op.ReduceProd(g.shapeY(0), { keepdims: 0 }));
  const n = g.op.Cast(count, { to: t });
  return expandToX(g, g.op.Div(keepShape(g, g.dy(), axes), n));
};

const reduceExtreme = (g: GradContext): Value => {
  const axes = reduceAxes(g);
  if (axes === 'none') return g.dy();
  const t = g.elemTypeX(0);
  const yk = keepShape(g, g.y(0), axes);
  const mask = g.op.Cast(g.op.Equal(g.x(0), yk), { to: t });
  const ties = axes === 'all' ? g.op.ReduceSum(mask, { keepdims: 1 }) : g.reduceSum(mask, axes, true);
  return g.op.Mul(mask, g.op.Div(keepShape(g, g.dy(), axes), ties));
};

const reduceLogSumExp = (g: GradContext): Value => {
  const axes = reduceAxes(g);
  if (axes === 'none') return g.dy();
  const p = g.op.Exp(g.op.Sub(g.x(0), keepShape(g, g.y(0), axes)));
  return g.op.Mul(p, keepShape(g, g.dy(), axes));
};

const reduceSumSquare = (g: GradContext): Value => {
  const axes = reduceAxes(g);
  if (axes === 'none') return g.op.Mul(g.dy(), g.op.Mul(g.x(0), g.scalar(2, g.elemTypeX(0))));
  return g.op.Mul(keepShape(g, g.dy(), axes), g.op.Mul(g.x(0), g.scalar(2, g.elemTypeX(0))));
};

/** Softmax axes: one axis from opset 13; before that the input is coerced to 2-D at `axis`. */
function softmaxAxes(g: GradContext): number[] {
  const axis = g.node.attrInt('axis', g.opset >= 13 ? -1 : 1);
  if (g.opset >= 13) return [axis];
  const r = g.rankX(0);
  const a = axis < 0 ? axis + r : axis;
  return Array.from({ length: r - a }, (_, k) => a + k);
}

const softmax = (g: GradContext): Value => {
  const y = g.y(0);
  const dy = g.dy();
  const s = g.reduceSum(g.op.Mul(dy, y), softmaxAxes(g), true);
  return g.op.Mul(y, g.op.Sub(dy, s));
};

const logSoftmax = (g: GradContext): Value => {
  const dy = g.dy();
  const s = g.reduceSum(dy, softmaxAxes(g), true);
  return g.op.Sub(dy, g.op.Mul(g.op.Exp(g.y(0)), s));
};

export const reduceRules: Record<string, GradRule> = {
  ReduceSum: { save: {}, grads: [reduceSum] },
  ReduceMean: { save: {}, grads: [reduceMean] },
  ReduceMax: { save: { inputs: [0], outputs: [0] }, grads: [reduceExtreme] },
  ReduceMin: { save: { inputs: [0], outputs: [0] }, grads: [reduceExtreme] },
  ReduceLogSumExp: { save: { inputs: [0], outputs: [0] }, grads: [reduceLogSumExp] },
  ReduceSumSquare: { save: { inputs: [0] }, grads: [reduceSumSquare] },
  Softmax: { save: { outputs: [0] }, grads: [softmax] },
  LogSoftmax: { save: { outputs: [0] }, grads: [logSoftmax] },
};
