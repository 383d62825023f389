/**
 * Gradients of ai.ortfuse::FusedLinearCrossEntropy (math in schema.ts).
 *
 * In-forward (Liger-Kernel; the default for 'mean' and 'sum'): the training-graph builder swaps the
 * node for FusedLinearCrossEntropyWithGrad (with-grad.ts), which returns grad_hidden, grad_weight
 * and grad_bias from its forward chunk loop; the backward multiplies them by the incoming dloss
 * (nothing at all when dloss is the constant 1).
 *
 * Backward-only (reduction 'none', or autodiff with inForward: false), chunked like the forward so
 * that a [c, V] logits chunk is the largest temporary: a Loop over row chunks recomputes the chunk's
 * logits z = h_c·Wᵀ + b (fp32) and
 *   dZ  = k_i · (softmax(z) − ε/V − (1 − ε)·onehot(y_i))     k_i = scale·[y_i ≠ ignore_index]
 *   dH_c = dZ·W,   dW += dZᵀ·h_c,   db += Σ_rows dZ
 * with scale = dy / #valid ('mean'; 1 when no row counts), dy ('sum') or dy_i ('none').
 * The one-hot is a ScatterElements(add) of −(1 − ε)·k_i. One Loop serves all three input gradients.
 * This costs one extra lm_head matmul. The Loop suits the cpu target; on WebGPU targets it runs on
 * the CPU (only the in-forward op has an unrolled body).
 */
import type { GradContext, GradFn, GradRule } from '../../src/autodiff/types.js';
import { replaceForwardNode } from '../../src/autodiff/in-forward.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { DataType } from '../../src/onnx/schema.js';
import { Body } from '../../src/fused/body.js';
import { ligerChunk } from './function.js';
import { linearCrossEntropyWithGradSchema } from './with-grad-schema.js';
import { ORTFUSE_DOMAIN, validateNode } from '../../src/fused/types.js';

/** Name of the backward rule's chunk Loop body (the webgpu kernel absorbs that Loop: webgpu/entry.ts). */
export const GRAD_LOOP = 'linear_ce_grad_chunk';

const F32 = DataType.FLOAT;
const done = new WeakMap<Node, (Value | undefined)[]>();

function backward(g: GradContext): (Value | undefined)[] {
  const have = done.get(g.node);
  if (have) return have;
  const hidden = g.x(0);
  const weight = g.x(1);
  const bias = g.node.inputs[2] ? g.x(2) : undefined;
  const labels = g.x(3);
  const t = g.elemTypeX(0);
  const b = new Body(g.node.graph, g.opset);
  const op = b.op;
  const ignore = g.node.attrInt('ignore_index', -100);
  const eps = g.node.attrFloat('label_smoothing', 0);
  const reduction = g.node.attrString('reduction', 'mean');

  // Per-row coefficient k [N, 1] (float32).
  const valid = op.Not(op.Equal(labels, g.ints(ignore)));
  const validF = op.Cast(valid, { to: F32 });
  const dy = g.dy();
  let scale: Value;
  if (reduction === 'mean') {
    const count = op.ReduceSum(validF, g.ints([0]), { keepdims: 0 });
    scale = op.Div(dy, op.Max(count, g.scalar(1, F32)));
  } else if (reduction === 'sum' || reduction === 'none') scale = dy;
  else return g.unsupported(`reduction '${reduction}'`);
  const k = op.Unsqueeze(op.Mul(validF, scale), g.ints([1]));
  const safe = op.Unsqueeze(op.Where(valid, labels, g.ints(0)), g.ints([1]));

  const one = g.ints([1]);
  const n = op.Shape(hidden, { start: 0, end: 1 });
  const v = op.Shape(weight, { start: 0, end: 1 });
  const h = op.Shape(weight, { start: 1, end: 2 });
  const requested = g.ints([g.node.attrInt('chunk_size', 0)]);
  const chunk = op.Where(op.Greater(requested, g.ints([0])), requested, ligerChunk(b, n, v, h));
  const ceilDiv = (a: Value, d: Value): Value => op.Div(op.Sub(op.Add(a, d), one), d);
  const trips = op.Reshape(ceilDiv(n, chunk), g.ints([]));
  const vf = op.Cast(v, { to: F32 });

  const carried = [
    { name: 'dh_rows', elem: t, shape: [null, null] },
    { name: 'dw_acc', elem: t, shape: [null, null] },
    ...(bias ? [{ name: 'db_acc', elem: t, shape: [null] }] : []),
  ];
  const { body, iter, carried: cin } = b.loopBody(GRAD_LOOP, carried);
  const o = body.op;
  const start = o.Mul(o.Unsqueeze(iter, body.const([0])), chunk);
  const end = o.Add(start, chunk);
  const rows = (x: Value): Value => body.slice(x, start, end, 0);
  const hc = rows(hidden);
  const z = o.Cast(o.Gemm(hc, weight, bias ?? null, { transB: 1 }), { to: F32 });
  const e = o.Exp(o.Sub(z, body.reduce('ReduceMax', z, [1], true)));
  const p = o.Div(e, body.reduce('ReduceSum', e, [1], true));
  const kc = rows(k);
  const smooth = eps === 0 ? p : o.Sub(p, o.Div(body.const(eps, F32, []), vf));
  const dzF = o.ScatterElements(o.Mul(smooth, kc), rows(safe), o.Mul(kc, body.const(-(1 - eps), F32, [])), { axis: 1, reduction: 'add' });
  const dz = t === F32 ? dzF : o.Cast(dzF, { to: t });
  const outs = [
    o.Concat(cin[0], o.MatMul(dz, weight), { axis: 0 }),
    o.Add(cin[1], o.Gemm(dz, hc, { transA: 1 })),
    ...(bias ? [o.Add(cin[2], body.reduce('ReduceSum', dz, [0], false))] : []),
  ];
  const zero = g.scalar(0, t);
  const init = [
    op.Expand(zero, op.Concat(g.ints([0]), h, { axis: 0 })),
    op.Expand(zero, op.Shape(weight)),
    ...(bias ? [op.Expand(zero, v)] : []),
  ];
  const res = b.loop(body, trips, init, outs);
  const result = [res[0], res[1], bias ? res[2] : undefined];
  done.set(g.node, result);
  return result;
}

const pick = (k: number): GradFn => (g) => backward(g)[k];

/** 'mean' / 'sum' nodes become FusedLinearCrossEntropyWithGrad (same inputs, attributes and loss value). */
function inForward(node: Node): Node | undefined {
  const reduction = node.attr('reduction') ? node.attrString('reduction') : 'mean';
  if (reduction !== 'mean' && reduction !== 'sum') return undefined;
  const s = linearCrossEntropyWithGradSchema;
  const n = replaceForwardNode(node, s.name, ORTFUSE_DOMAIN, s.outputs.slice(1).map((o) => ({ name: o.name })));
  validateNode(s, n).forEach((t, i) => {
    if (i > 0) n.outputs[i].type = t;
  });
  return n;
}

export const linearCrossEntropyGrad: GradRule = {
  save: { inputs: [0, 1, 2, 3] },
  grads: [pick(0), pick(1), pick(2)],
  inForward,
};

/** ∂loss/∂input_i = dloss · output_{i+1} of FusedLinearCrossEntropyWithGrad. */
const scaled = (i: number): GradFn => (g) => {
  const grad = g.y(i + 1);
  const c = g.dyConst();
  if (c?.length === 1 && c[0] === 1) return grad;
  const t = g.elemTypeX(0);
  const dy = g.dy();
  return g.op.Mul(t === F32 ? dy : g.op.Cast(dy, { to: t }), grad);
};

export const linearCrossEntropyWithGradGrad: GradRule = {
  save: { outputs: [1, 2, 3] },
  grads: [scaled(0), scaled(1), scaled(2)],
};
