/**
 * One Qwen2 decoder layer as torch's dynamo exporter decomposes it: RMSNorm as
 * Pow -> ReduceMean -> Add(eps) -> Sqrt -> Reciprocal -> Mul(x) -> Mul(weight); q/k/v projections
 * as MatMul(x, Transpose(W)) + bias; RoPE as q*cos + rotate_half(q)*sin with rotate_half
 * Slice/Neg/Concat; GQA by Unsqueeze/Expand/Reshape of k and v; attention by MatMul, boolean mask
 * (Where), Softmax, IsNaN guard, MatMul; SwiGLU MLP with SiLU as Sigmoid -> Mul.
 */
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { headDim, type Qwen2Config } from './config.js';

/** What the layer builders share. */
export interface LayerContext {
  b: GraphBuilder;
  config: Qwen2Config;
  /** The parameter value of that name. */
  w(name: string): Value;
  /** An int64 constant (scalar for a number, 1-D for an array). */
  ints(v: number | number[]): Value;
  /** A float32 scalar constant. */
  float(v: number): Value;
}

/** Per-forward values the layers read. */
export interface LayerInputs {
  /** [1, 1, seq, head_dim] */
  cos: Value;
  sin: Value;
  /** bool [batch, 1, seq, seq], true where attention is allowed. */
  mask: Value;
}

/** RMSNorm: weight * (x * 1/sqrt(mean(x^2, -1) + eps)). */
export function rmsNorm(ctx: LayerContext, x: Value, weight: Value): Value {
  const op = ctx.b.op;
  const variance = op.ReduceMean(op.Pow(x, ctx.float(2)), ctx.ints([-1]), { keepdims: 1 });
  const rstd = op.Reciprocal(op.Sqrt(op.Add(variance, ctx.float(ctx.config.rms_norm_eps))));
  return op.Mul(weight, op.Mul(x, rstd));
}

/** nn.Linear: x @ W^T (+ b). */
export function linear(ctx: LayerContext, x: Value, weight: Value, bias?: Value): Value {
  const op = ctx.b.op;
  const y = op.MatMul(x, op.Transpose(weight, { perm: [1, 0] }));
  return bias ? op.Add(y, bias) : y;
}

/** rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]). */
function rotateHalf(ctx: LayerContext, x: Value): Value {
  const op = ctx.b.op;
  const half = headDim(ctx.config) / 2;
  const x1 = op.Slice(x, ctx.ints([0]), ctx.ints([half]), ctx.ints([3]), ctx.ints([1]));
  const x2 = op.Slice(x, ctx.ints([half]), ctx.ints([Number.MAX_SAFE_INTEGER]), ctx.ints([3]), ctx.ints([1]));
  return op.Concat(op.Neg(x2), x1, { axis: -1 });
}

function rope(ctx: LayerContext, x: Value, io: LayerInputs): Value {
  const op = ctx.b.op;
  return op.Add(op.Mul(x, io.cos), op.Mul(rotateHalf(ctx, x), io.sin));
}

/** [batch, kv_heads, seq, hd] -> [batch, heads, seq, hd] (transformers' repeat_kv). */
function repeatKv(ctx: LayerContext, x: Value, shapeOf: Value): Value {
  const c = ctx.config;
  const nRep = c.num_attention_heads / c.num_key_value_heads;
  if (nRep === 1) return x;
  const op = ctx.b.op;
  const hd = headDim(c);
  const bsz = op.Gather(op.Shape(shapeOf), ctx.ints([0]), { axis: 0 });
  const seq = op.Gather(op.Shape(shapeOf), ctx.ints([1]), { axis: 0 });
  const expShape = op.Concat(bsz, ctx.ints([c.num_key_value_heads, nRep]), seq, ctx.ints([hd]), { axis: 0 });
  const expanded = op.Expand(op.Unsqueeze(x, ctx.ints([2])), expShape);
  const outShape = op.Concat(bsz, ctx.ints([c.num_attention_heads]), seq, ctx.ints([hd]), { axis: 0 });
  return op.Reshape(expanded, outShape);
}

/** Self-attention of layer `l` on normed hidden states `x` [batch, seq, hidden]. */
function attention(ctx: LayerContext, l: number, x: Value, io: LayerInputs): Value {
  const { b, config: c } = ctx;
  const op = b.op;
  const p = `model.layers.${l}.self_attn`;
  const hd = headDim(c);
  const bias = (n: string) => (c.attention_bias ?? true ? ctx.w(`${p}.${n}.bias`) : undefined);
  const heads = (v: Value) => op.Transpose(op.Reshape(v, ctx.ints([0, 0, -1, hd])), { perm: [0, 2, 1, 3] });
  const q = heads(linear(ctx, x, ctx.w(`${p}.q_proj.weight`), bias('q_proj')));
  const k = heads(linear(ctx, x, ctx.w(`${p}.k_proj.weight`), bias('k_proj')));
  const v = heads(linear(ctx, x, ctx.w(`${p}.v_proj.weight`), bias('v_proj')));
  const qr = rope(ctx, q, io);
  const kr = rope(ctx, k, io);
  const kf = repeatKv(ctx, kr, x);
  const vf = repeatKv(ctx, v, x);
  // SDPA with a boolean mask (torchlib): scale q and k^T by sqrt(scale), add Where(mask, 0, -inf).
  const sqrtScale = ctx.float(Math.sqrt(1 / Math.sqrt(hd)));
  const scores = op.MatMul(op.Mul(qr, sqrtScale), op.Mul(op.Transpose(kf, { perm: [0, 1, 3, 2] }), sqrtScale));
  const bias4 = op.Where(io.mask, ctx.float(0), ctx.float(-Infinity));
  const probs = op.Softmax(op.Add(scores, bias4), { axis: -1 });
  const safe = op.Where(op.IsNaN(probs), ctx.float(0), probs);
  const ctxOut = op.Transpose(op.MatMul(safe, vf), { perm: [0, 2, 1, 3] });
  const merged = op.Reshape(ctxOut, ctx.ints([0, 0, -1]));
  return linear(ctx, merged, ctx.w(`${p}.o_proj.weight`));
}

/** SwiGLU MLP: down(silu(gate(x)) * up(x)). */
function mlp(ctx: LayerContext, l: number, x: Value): Value {
  const op = ctx.b.op;
  const p = `model.layers.${l}.mlp`;
  const gate = linear(ctx, x, ctx.w(`${p}.gate_proj.weight`));
  const up = linear(ctx, x, ctx.w(`${p}.up_proj.weight`));
  const act = op.Mul(gate, op.Sigmoid(gate));
  return linear(ctx, op.Mul(act, up), ctx.w(`${p}.down_proj.weight`));
}

/** Decoder layer `l`: h + attn(norm(h)), then + mlp(norm(.)). */
export function decoderLayer(ctx: LayerContext, l: number, h: Value, io: LayerInputs): Value {
  const op = ctx.b.op;
  const p = `model.layers.${l}`;
  const a = attention(ctx, l, rmsNorm(ctx, h, ctx.w(`${p}.input_layernorm.weight`)), io);
  const h1 = op.Add(h, a);
  const m = mlp(ctx, l, rmsNorm(ctx, h1, ctx.w(`${p}.post_attention_layernorm.weight`)));
  return op.Add(h1, m);
}
