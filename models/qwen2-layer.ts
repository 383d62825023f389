/**
 * One Qwen2 decoder layer as torch 2.11's dynamo exporter writes it (transformers 5.17, eager
 * attention; node order as in models/fixtures/nodes/qwen2-tiny.nodes.txt):
 *   RMSNorm  Pow(x,2) -> ReduceMean(-1) -> Add(eps) -> Sqrt -> Reciprocal -> Mul(x, .) -> Mul(w, .)
 *   Linear   MatMul(x, Transpose(W)) [-> Add(., b)]
 *   heads    Reshape(allowzero=1, [batch, seq, -1, hd]) -> Transpose(0,2,1,3)
 *   RoPE     Add(Mul(q, cos), Mul(Concat(Neg(Slice(q, d/2:)), Slice(q, :d/2)), sin))
 *   GQA      Unsqueeze(2) -> Expand([batch, kv, rep, seq, hd]) -> Reshape([batch, heads, seq, hd])
 *   scores   MatMul(q, Transpose(k, 0,1,3,2)) -> Mul(scaling) -> Add(mask) -> Softmax -> MatMul(., v)
 *   SwiGLU   Mul(Mul(g, Sigmoid(g)), up) with g = gate(x)
 */
import type { Value } from '../src/ir/graph.js';
import { headDim } from './config.js';
import { INT64_MAX, type BuildContext } from './qwen2-context.js';

/** Per-forward values the layers read. */
export interface LayerInputs {
  /** [1, seq, head_dim] RoPE tables (unsqueezed to [1, 1, seq, hd] at first use). */
  cos: Value;
  sin: Value;
  /** float [batch, 1, seq, seq]: 0 where attention is allowed, -FLT_MAX elsewhere. */
  mask: Value;
  /** int64 [1] shape tensors: Shape(input_ids)[0:1] and Shape(labels)[1:2]. */
  batch: Value;
  seq: Value;
}

/** RMSNorm: weight * (x * 1/sqrt(mean(x^2, -1) + eps)). */
export function rmsNorm(ctx: BuildContext, x: Value, weight: Value): Value {
  const op = ctx.op;
  const variance = op.ReduceMean(op.Pow(x, ctx.float(2)), ctx.ints([-1]), { keepdims: 1, noop_with_empty_axes: 0 });
  const rstd = op.Reciprocal(op.Sqrt(op.Add(variance, ctx.float(ctx.config.rms_norm_eps))));
  return op.Mul(weight, op.Mul(x, rstd));
}

/** nn.Linear: x @ W^T (+ b). */
export function linear(ctx: BuildContext, x: Value, weight: Value, bias?: Value): Value {
  const op = ctx.op;
  const y = op.MatMul(x, op.Transpose(weight, { perm: [1, 0] }));
  return bias ? op.Add(y, bias) : y;
}

/** x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]). */
function rope(ctx: BuildContext, x: Value, cos: Value, sin: Value): Value {
  const op = ctx.op;
  const half = headDim(ctx.config) / 2;
  const xc = op.Mul(x, cos);
  const x1 = op.Slice(x, ctx.ints([0]), ctx.ints([half]), ctx.ints([3]), ctx.ints([1]));
  const x2 = op.Slice(x, ctx.ints([half]), ctx.ints([INT64_MAX]), ctx.ints([3]), ctx.ints([1]));
  const rot = op.Concat(op.Neg(x2), x1, { axis: -1 });
  return op.Add(xc, op.Mul(rot, sin));
}

/** transformers' repeat_kv: [batch, kv, seq, hd] -> [batch, heads, seq, hd]. */
function repeatKv(ctx: BuildContext, x: Value, io: LayerInputs): Value {
  const c = ctx.config;
  const nRep = c.num_attention_heads / c.num_key_value_heads;
  if (nRep === 1) return x;
  const op = ctx.op;
  const hd = ctx.ints([headDim(c)]);
  const u = op.Unsqueeze(x, ctx.ints([2]));
  const expShape = ctx.once('kvExpandShape', () =>
    op.Concat(io.batch, ctx.ints([c.num_key_value_heads]), ctx.ints([nRep]), io.seq, hd, { axis: 0 }));
  const e = op.Expand(u, expShape);
  const outShape = ctx.once('kvMergeShape', () => op.Concat(io.batch, ctx.ints([c.num_attention_heads]), io.seq, hd, { axis: 0 }));
  return op.Reshape(e, outShape, { allowzero: 1 });
}

/** Self-attention of layer `l` on normed hidden states `x` [batch, seq, hidden]. */
function attention(ctx: BuildContext, l: number, x: Value, io: LayerInputs): Value {
  const c = ctx.config;
  const op = ctx.op;
  const p = `model.layers.${l}.self_attn`;
  const hd = headDim(c);
  const bias = (n: string) => ((c.attention_bias ?? true) ? ctx.w(`${p}.${n}.bias`) : undefined);
  const headShape = () => ctx.once('headShape', () => op.Concat(io.batch, io.seq, ctx.ints([-1]), ctx.ints([hd]), { axis: 0 }));
  const heads = (v: Value) => op.Transpose(op.Reshape(v, headShape(), { allowzero: 1 }), { perm: [0, 2, 1, 3] });
  const q = heads(linear(ctx, x, ctx.w(`${p}.q_proj.weight`), bias('q_proj')));
  const k = heads(linear(ctx, x, ctx.w(`${p}.k_proj.weight`), bias('k_proj')));
  const v = heads(linear(ctx, x, ctx.w(`${p}.v_proj.weight`), bias('v_proj')));
  const cos = ctx.once('cos4', () => op.Unsqueeze(io.cos, ctx.ints([1])));
  const sin = ctx.once('sin4', () => op.Unsqueeze(io.sin, ctx.ints([1])));
  const qr = rope(ctx, q, cos, sin);
  const kr = rope(ctx, k, cos, sin);
  const kf = repeatKv(ctx, kr, io);
  const vf = repeatKv(ctx, v, io);
  const scores = op.Mul(op.MatMul(qr, op.Transpose(kf, { perm: [0, 1, 3, 2] })), ctx.float(1 / Math.sqrt(hd)));
  const probs = op.Softmax(op.Add(scores, io.mask), { axis: -1 });
  const out = op.Transpose(op.MatMul(probs, vf), { perm: [0, 2, 1, 3] });
  const mergeShape = ctx.once('mergeShape', () => op.Concat(io.batch, io.seq, ctx.ints([-1]), { axis: 0 }));
  return linear(ctx, op.Reshape(out, mergeShape, { allowzero: 1 }), ctx.w(`${p}.o_proj.weight`));
}

/** SwiGLU MLP: down(silu(gate(x)) * up(x)). */
function mlp(ctx: BuildContext, l: number, x: Value): Value {
  const op = ctx.op;
  const p = `model.layers.${l}.mlp`;
  const gate = linear(ctx, x, ctx.w(`${p}.gate_proj.weight`));
  const act = op.Mul(gate, op.Sigmoid(gate));
  const up = linear(ctx, x, ctx.w(`${p}.up_proj.weight`));
  return linear(ctx, op.Mul(act, up), ctx.w(`${p}.down_proj.weight`));
}

/** Decoder layer `l`: h + attn(norm(h)), then + mlp(norm(.)). */
export function decoderLayer(ctx: BuildContext, l: number, h: Value, io: LayerInputs): Value {
  const op = ctx.op;
  const p = `model.layers.${l}`;
  const h1 = op.Add(h, attention(ctx, l, rmsNorm(ctx, h, ctx.w(`${p}.input_layernorm.weight`)), io));
  return op.Add(h1, mlp(ctx, l, rmsNorm(ctx, h1, ctx.w(`${p}.post_attention_layernorm.weight`))));
}
