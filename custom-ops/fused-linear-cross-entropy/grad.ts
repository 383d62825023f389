/**
 * Gradients of ai.ortfuse::FusedLinearCrossEntropy (math in schema.ts).
 *
 * In-forward (Liger-Kernel; the default for 'mean' and 'sum'): the training-graph builder swaps the
 * node for FusedLinearCrossEntropyWithGrad (with-grad.ts), which returns grad_hidden, grad_weight
 * and grad_bias from its forward chunk loop; the backward multiplies them by the incoming dloss
 * (nothing at all when dloss is the constant 1, or a graph input or initializer such as mixed
 * precision's loss_scale, which the node then takes as its input grad_scale).
 *
 * Backward-only (reduction 'none', or autodiff with inForward: false), chunked like the forward so
 * that a [c, V] logits chunk is the largest temporary: a Loop over row chunks recomputes each
 * chunk's logits and runs chunks.ts's chunk with the flag grads (no loss), with
 *   k_i = scale·[y_i ≠ ignore_index],   scale = dy / #valid ('mean'; 1 when no row counts), dy ('sum') or dy_i ('none'),
 * giving dH_c = k ⊙ (Q·W − (ε/V)·Σ_j W_j), dW += Qᵀ·(k ⊙ h_c), db += kᵀ·Q. One Loop serves all
 * three input gradients; this costs one extra lm_head matmul. The Loop suits the cpu target; on
 * WebGPU targets it runs on the CPU (only the in-forward op has an unrolled body), or our kernel
 * absorbs it (webgpu/entry.ts). Precision 'f16' (the node's attribute): rounded GEMM operands, the
 * scalar part of k applied after the grad_weight GEMM (chunks.ts).
 */
import type { GradContext, GradFn, GradRule } from '../../src/autodiff/types.js';
import { replaceForwardNode } from '../../src/autodiff/in-forward.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { DataType } from '../../src/onnx/schema.js';
import { Body } from '../../src/fused/body.js';
import { gradStart, gradStartF16, labelRows, loopChunkRows, loopChunks, roundF16Inputs, type Shared } from './chunks.js';
import { nodePrecision } from '../precision.js';
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
  const eps = g.node.attrFloat('label_smoothing', 0);
  const reduction = g.node.attrString('reduction', 'mean');

  // Per-row coefficient k [N, 1] in hidden's type.
  const { validF, count, safe } = labelRows(b, labels, g.ints(g.node.attrInt('ignore_index', -100)));
  const dy = g.dy();
  let scale: Value;
  if (reduction === 'mean') scale = op.Div(dy, op.Max(count, g.scalar(1, F32)));
  else if (reduction === 'sum' || reduction === 'none') scale = dy;
  else return g.unsupported(`reduction '${reduction}'`);
  const kF = op.Unsqueeze(op.Mul(validF, scale), g.ints([1]));
  const k = t === F32 ? kF : op.Cast(kF, { to: t });
  const chunkRows = () => loopChunkRows(b, hidden, weight, g.ints([g.node.attrInt('chunk_size', 0)]));
  let res;
  if (nodePrecision(g.node) === 'f16') {
    // Rounded operands; the scalar part of k after dW's GEMM ('none': the per-row d loss stays in its operand; chunks.ts).
    const perRow = reduction === 'none';
    const kRow = op.Unsqueeze(perRow ? op.Mul(validF, scale) : validF, g.ints([1]));
    const { f16, hk, scale: scaleDw, ...acc } = gradStartF16(b, hidden, weight, op.CastLike(kRow, hidden), perRow ? g.scalar(1, F32) : op.Reshape(scale, g.ints([])), g.scalar(eps, F32), bias !== undefined);
    const rounded = roundF16Inputs(b, hidden, weight);
    const shared: Shared = { weight: rounded.weight, bias: bias ?? null, keep: g.scalar(1 - eps, F32), f16 };
    res = loopChunks(b, GRAD_LOOP, shared, { hidden: rounded.hidden, safe, k, hk }, { grads: true }, chunkRows(), acc, t);
    res.dw = perRow ? res.dw : scaleDw(res.dw!);
  } else {
    const { dhShift, ...acc } = gradStart(b, hidden, weight, k, g.scalar(eps, F32), bias !== undefined);
    const shared: Shared = { weight, bias: bias ?? null, keep: g.scalar(1 - eps, F32), dhShift };
    res = loopChunks(b, GRAD_LOOP, shared, { hidden, safe, k }, { grads: true }, chunkRows(), acc, t);
  }
  const result = [res.dh, res.dw, res.db];
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

/**
 * ∂loss/∂input_i = dloss · output_{i+1} of FusedLinearCrossEntropyWithGrad: the output itself when
 * dloss is the constant 1 (fp32 training), or when dloss exists before the forward node runs (see
 * `gradScaleInForward`): then the node takes it as its input grad_scale and its outputs come
 * scaled. Otherwise (dloss computed in the backward, e.g. through a Div or a Sum between this loss
 * and the graph's) a Mul here, which holds a second [V, H] grad_weight while it runs.
 */
const scaled = (i: number): GradFn => (g) => {
  const grad = g.y(i + 1);
  const c = g.dyConst();
  if (c?.length === 1 && c[0] === 1) return grad;
  const dy = g.dy();
  if (gradScaleInForward(g.node, dy)) return grad;
  const t = g.elemTypeX(0);
  return g.op.Mul(t === F32 ? dy : g.op.Cast(dy, { to: t }), grad);
};

/**
 * Wire `dy` as the node's grad_scale (input 4) when the forward node can read it: a float32
 * one-element graph input (mixed precision's loss_scale seed) or initializer of the node's graph,
 * which no backward node computes. True when the node takes it (idempotent over the three
 * gradients).
 */
function gradScaleInForward(node: Node, dy: Value): boolean {
  if (node.inputs[4]) return node.inputs[4] === dy;
  const t = dy.tensorType ?? (dy.initializer && { elemType: dy.initializer.dtype, shape: dy.initializer.dims });
  const one = t?.shape && t.shape.length <= 1 && t.shape.every((d) => d === 1);
  if (dy.graph !== node.graph || !(dy.isGraphInput() || dy.initializer) || t?.elemType !== F32 || !one) return false;
  node.setInput(4, dy);
  return true;
}

export const linearCrossEntropyWithGradGrad: GradRule = {
  save: { outputs: [1, 2, 3] },
  grads: [scaled(0), scaled(1), scaled(2)],
};
