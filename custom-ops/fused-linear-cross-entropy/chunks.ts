/**
 * The one chunk computation of linear + cross-entropy, as Liger-Kernel's fused forward: flags say
 * what a chunk of c rows computes, and two drivers run it over the rows.
 *
 *   z = h_c·Wᵀ + b (fp32), m = max_j z_j
 *   loss (per row, 0 on ignored rows):  lse − (1 − ε)·z_y − ε·mean_j z_j
 *   grads:  Q = softmax(z) − (1 − ε)·onehot(y)             (one ScatterElements(add))
 *           dH_c = k ⊙ (Q·W − (ε/V)·Σ_j W_j)   dW += Qᵀ·(k ⊙ h_c)   db += kᵀ·Q
 *
 * k_i is the row's coefficient (0 on ignored rows; 1/#valid for 'mean', d loss for the backward).
 * k scales the [c, H] side and the ε/V term is rank one, so a chunk holds three [c, V] tensors
 * (z, softmax, Q); the ε/V parts of dW and db, −(ε/V)·1 ⊗ kᵀ·H and −(ε/V)·Σk, are the
 * accumulators' initial values (`gradStart`). With the softmax at hand, lse = m − log max softmax;
 * without it (loss only), the log-sum-exp is max-subtracted by hand: ORT 1.30's CPU
 * ReduceLogSumExp took 20.8 ms on a [256, 32000] chunk vs 3.8 ms for these ops (medians of 10,
 * interleaved), and WebGPU implementations need not subtract the max. mean_j z_j comes without
 * logits: hidden · mean_j(W_j) + mean(bias) (`logitMean`).
 *
 * The three users: the loss-only body (function.ts: flags loss 'rows'), the in-forward body
 * (with-grad.ts: loss 'sum' + grads) and the backward-only gradient rule (grad.ts: grads).
 *
 * Precision 'f16' (../precision.ts; `roundF16Inputs`): hidden and weight are rounded through
 * float16 once, before the chunks, and the gradient GEMMs take an operand in [−1, 1]:
 *
 *   Q' = softmax(z) − (1 − ε)·onehot(y) − ε/V               (rounded; no rank-one ε/V terms)
 *   dH_c = k ⊙ (Q'·W)   dW' += Q'ᵀ·round(k' ⊙ h_c)   db += kᵀ·Q'   (k = s·k', s a scalar)
 *
 * and the caller's dW = s·dW' (`scaleF16`): the 1/#valid of 'mean' (and a scalar d loss)
 * multiplies in fp32 after the GEMMs, once: in Q'·k it
 * would underflow float16 (softmax entries over a 151,936 vocabulary are 1e-5..1e-10; /4096 rows
 * is below float16's 6e-8 smallest subnormal). k' is the row indicator (or, for reduction 'none',
 * the per-row d loss, which has no common scalar).
 */
import { fail } from '../../src/errors.js';
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import { gemmOperand } from '../precision.js';

const F32 = DataType.FLOAT;

/** What a chunk computes. */
export interface ChunkFlags {
  /** 'rows': the per-row losses [N, 1]; 'sum': their sum (a float32 scalar). */
  loss?: 'rows' | 'sum';
  /** grad_hidden rows and the grad_weight / grad_bias accumulators. */
  grads?: boolean;
}

/** Values every chunk reads whole. */
export interface Shared {
  weight: Value;
  /** Absent (null) when the op has no bias. */
  bias: Value | null;
  /** float32 scalars ε and 1 − ε (loss). */
  eps?: Value;
  keep?: Value;
  /** [1, H] (ε/V)·Σ_j W_j in hidden's type (grads; fp32 precision). */
  dhShift?: Value;
  /** Precision 'f16' (grads): weight and hidden are rounded and Q' takes −ε/V (float32 ε/V); dW accumulates without its scalar factor. */
  f16?: { epsOverV: Value };
}

/** Row-aligned inputs, sliced per chunk. */
export interface Rows {
  /** [N, H]. */
  hidden: Value;
  /** [N, 1] labels with ignored rows set to class 0 (safe for GatherElements / ScatterElements). */
  safe: Value;
  /** [N, 1] bool: label != ignore_index (loss). */
  valid?: Value;
  /** [N, 1] float32: mean_j z_ij (loss). */
  zmean?: Value;
  /** [N, 1] the row coefficients in hidden's type (grads). */
  k?: Value;
  /** [N, H] round(k' ⊙ hidden), dW's operand under precision 'f16' (k = kScale·k'). */
  hk?: Value;
}

/** What the chunks add up to (a driver's carried values; each present as the flags ask). */
export interface Totals {
  loss?: Value;
  dh?: Value;
  dw?: Value;
  /** [V] (a Gemm's C broadcasts it to [1, V]). */
  db?: Value;
}

const need = <T>(x: T | undefined, what: string): T => x ?? fail('invalid', `linear-CE chunk: ${what} is missing for these flags`);

/**
 * One chunk (rows already sliced): its per-row losses or their sum, its grad_hidden rows, and the
 * accumulators `acc` (dw, db) updated. Per-row outputs are per chunk; the driver joins them.
 */
export function linearCeChunk(b: Body, s: Shared, r: Rows, f: ChunkFlags, acc: Totals): Totals {
  const op = b.op;
  const z = op.Cast(op.Gemm(r.hidden, s.weight, s.bias, { transB: 1 }), { to: F32 });
  const sm = f.grads ? op.Softmax(z, { axis: 1 }) : undefined;
  const out: Totals = {};
  if (f.loss) {
    const m = b.reduce('ReduceMax', z, [1], true);
    const lse = sm
      ? op.Sub(m, op.Log(b.reduce('ReduceMax', sm, [1], true)))
      : op.Add(op.Log(b.reduce('ReduceSum', op.Exp(op.Sub(z, m)), [1], true)), m);
    const zt = op.GatherElements(z, r.safe, { axis: 1 });
    const loss = op.Sub(op.Sub(lse, op.Mul(need(s.keep, 'keep'), zt)), op.Mul(need(s.eps, 'eps'), need(r.zmean, 'zmean')));
    const rows = op.Where(need(r.valid, 'valid'), loss, b.const(0, F32));
    out.loss = f.loss === 'rows' ? rows : b.reduce('ReduceSum', rows, [0, 1], false);
  }
  if (sm) {
    const k = need(r.k, 'k');
    const negKeep = op.Neg(need(s.keep, 'keep'));
    const shifted = op.ScatterElements(sm, r.safe, op.Expand(negKeep, op.Shape(r.safe)), { axis: 1, reduction: 'add' });
    if (s.f16) {
      const q = op.CastLike(op.Sub(shifted, s.f16.epsOverV), r.hidden);
      const q16 = roundF16(b, q);
      out.dh = op.Mul(op.MatMul(q16, s.weight), k);
      out.dw = op.Gemm(q16, need(r.hk, 'hk'), need(acc.dw, 'dw'), { transA: 1 });
      if (acc.db) out.db = op.Reshape(op.Gemm(k, q, acc.db, { transA: 1 }), b.const([-1]));
      return out;
    }
    const q = op.CastLike(shifted, r.hidden);
    out.dh = op.Mul(op.Sub(op.MatMul(q, s.weight), need(s.dhShift, 'dhShift')), k);
    out.dw = op.Gemm(q, op.Mul(r.hidden, k), need(acc.dw, 'dw'), { transA: 1 });
    if (acc.db) out.db = op.Reshape(op.Gemm(k, q, acc.db, { transA: 1 }), b.const([-1]));
  }
  return out;
}

/** mean_j z_ij = hidden_i · mean_j W_j + mean(bias) as float32 [N, 1], without logits. */
export function logitMean(b: Body, hidden: Value, weight: Value, bias: Value | null): Value {
  const op = b.op;
  const wmean = b.reduce('ReduceMean', weight, [0], true);
  // The bias mean comes from a [1, H] zeros Gemm so that an absent bias needs no special case.
  // keepdims: a [1, 1] C, not a scalar: onnxruntime-node 1.30's WebGPU EP aborts the process on a
  // Gemm with a rank-0 C once the product is larger than a few tiles (checked on SwiftShader).
  const zerosH = op.CastLike(op.ConstantOfShape(op.Concat(b.const([1]), b.dims(weight, 1, 2), { axis: 0 })), hidden);
  const bmean = b.reduce('ReduceMean', op.Gemm(zerosH, weight, bias, { transB: 1 }), [0, 1], true);
  return op.Cast(op.Gemm(hidden, wmean, bmean, { transB: 1 }), { to: F32 });
}

/**
 * The gradient side's shared values and accumulator starts for row coefficients `k` [N, 1] (hidden's
 * type) and float32 ε: dhShift, dW₀ = −(ε/V)·1 ⊗ kᵀ·H [V, H] and (with a bias) db₀ = −(ε/V)·Σk [V].
 */
export function gradStart(b: Body, hidden: Value, weight: Value, k: Value, eps: Value, bias = true): { dhShift: Value; dw: Value; db?: Value } {
  const op = b.op;
  const v = b.dims(weight, 0, 1);
  const epsOverV = op.CastLike(op.Div(eps, op.Cast(b.scalar(v), { to: F32 })), hidden);
  const negEps = op.Neg(epsOverV);
  return {
    dhShift: op.Mul(epsOverV, b.reduce('ReduceSum', weight, [0], true)),
    dw: op.Expand(op.Mul(negEps, op.Gemm(k, hidden, { transA: 1 })), op.Shape(weight)),
    db: bias ? op.Expand(op.Mul(negEps, b.reduce('ReduceSum', k, [0, 1], false)), v) : undefined,
  };
}

/** `x` rounded through float16, in its own type (precision 'f16'). */
const roundF16 = (b: Body, x: Value): Value => gemmOperand(b, x, 'f16');

/** Hidden and weight rounded through float16 once, for every chunk's GEMMs (precision 'f16'). */
export function roundF16Inputs(b: Body, hidden: Value, weight: Value): { hidden: Value; weight: Value } {
  return { hidden: roundF16(b, hidden), weight: roundF16(b, weight) };
}

/**
 * The gradient side under precision 'f16' for row coefficients k = kScale · kRow: Shared.f16, dW's
 * operand round(kRow ⊙ hidden) (`hidden` unrounded), zero accumulator starts (the ε/V terms are in
 * Q'), and `scale`, which gives the driver's unscaled dW its factor kScale.
 */
export function gradStartF16(b: Body, hidden: Value, weight: Value, kRow: Value, kScale: Value, eps: Value, bias = true): { f16: NonNullable<Shared['f16']>; hk: Value; dw: Value; db?: Value; scale: (dw: Value) => Value } {
  const op = b.op;
  const v = b.dims(weight, 0, 1);
  const zeros = (shape: Value) => op.CastLike(op.ConstantOfShape(shape), hidden);
  return {
    f16: { epsOverV: op.Div(eps, op.Cast(b.scalar(v), { to: F32 })) },
    hk: roundF16(b, op.Mul(hidden, kRow)),
    dw: zeros(op.Shape(weight)),
    db: bias ? zeros(v) : undefined,
    scale: (dw) => op.Mul(dw, op.CastLike(kScale, hidden)),
  };
}

/**
 * The label side, computed once outside the chunks: `valid` [N, 1] bool (label ≠ ignore_index),
 * its float32 indicator [N] and count (scalar), and the safe labels [N, 1] (ignored rows → class 0).
 */
export function labelRows(b: Body, labels: Value, ignoreIndex: Value): { valid: Value; validF: Value; count: Value; safe: Value } {
  const op = b.op;
  const ax1 = b.const([1]);
  const valid1 = op.Not(op.Equal(labels, ignoreIndex));
  const validF = op.Cast(valid1, { to: F32 });
  return {
    valid: op.Unsqueeze(valid1, ax1), validF, count: b.reduce('ReduceSum', validF, [0], false),
    safe: op.Unsqueeze(op.Where(valid1, labels, b.const(0)), ax1),
  };
}

/** ⌈a / d⌉ of 1-D int64 values. */
export function ceilDiv(b: Body, a: Value, d: Value): Value {
  return b.op.Div(b.op.Sub(b.op.Add(a, d), b.const([1])), d);
}

/**
 * Liger's chunk rows next_pow2(ceil(N / ceil(V / H))) from 1-D int64 [1] dims, at run time:
 * 2^ceil(log2(q) − 1e-9) in float64 (exact for q < 2^30).
 */
export function ligerChunk(b: Body, n: Value, v: Value, h: Value): Value {
  const op = b.op;
  const q = op.Cast(op.Max(ceilDiv(b, n, ceilDiv(b, v, h)), b.const([1])), { to: DataType.DOUBLE });
  const log2q = op.Div(op.Log(q), b.const(Math.LN2, DataType.DOUBLE, []));
  const k = op.Ceil(op.Sub(log2q, b.const(1e-9, DataType.DOUBLE, [])));
  return op.Cast(op.Pow(b.const(2, DataType.DOUBLE, []), k), { to: DataType.INT64 });
}

/**
 * Chunk rows of a Loop: `requested` (1-D int64 [1]) when positive, else Liger's rule for the
 * shapes, raised to `min` rows (at most N) when given.
 */
export function loopChunkRows(b: Body, hidden: Value, weight: Value, requested: Value, min?: number): Value {
  const op = b.op;
  const n = b.dims(hidden, 0, 1);
  const liger = ligerChunk(b, n, b.dims(weight, 0, 1), b.dims(weight, 1, 2));
  const auto = min === undefined ? liger : op.Max(op.Min(op.Max(liger, b.const([min])), n), b.const([1]));
  return op.Where(op.Greater(requested, b.const([0])), requested, auto);
}

/** Row-aligned inputs of rows start..end (1-D int64; Slice clamps to N). */
function sliceRows(b: Body, r: Rows, start: Value, end: Value): Rows {
  const cut = (x: Value | undefined) => x && b.slice(x, start, end, 0);
  return { hidden: cut(r.hidden)!, safe: cut(r.safe)!, valid: cut(r.valid), zmean: cut(r.zmean), k: cut(r.k), hk: cut(r.hk) };
}

/** Which totals a driver carries, in output order: loss, dh, dw, db. */
const KEYS = ['loss', 'dh', 'dw', 'db'] as const;

/** The totals a run starts from: nothing yet of the per-row outputs and the loss sum, `acc` for dw and db. */
function startTotals(b: Body, r: Rows, f: ChunkFlags, acc: Totals): Totals {
  const op = b.op;
  const emptyRows = (width: Value, like: Value) => op.CastLike(op.ConstantOfShape(op.Concat(b.const([0]), width, { axis: 0 })), like);
  return {
    loss: f.loss === 'rows' ? b.const([], F32, [0, 1]) : f.loss ? b.const(0, F32) : undefined,
    dh: f.grads ? emptyRows(b.dims(r.hidden, 1, 2), r.hidden) : undefined,
    dw: f.grads ? need(acc.dw, 'dw') : undefined,
    db: f.grads ? acc.db : undefined,
  };
}

/**
 * All chunks in a Loop of ⌈N / chunk⌉ trips (the cpu bodies and the backward rule; the body is
 * named `name`), from the accumulators' starts `acc` (dw, db: `gradStart`). `elem`: hidden's
 * element type where known (undefined: the body is type-polymorphic and ORT takes the type from
 * the Loop's inputs). Per-row outputs grow by Concat (ORT allows carried shapes to change).
 */
export function loopChunks(b: Body, name: string, s: Shared, r: Rows, f: ChunkFlags, chunk: Value, acc: Totals = {}, elem?: number): Totals {
  const start = startTotals(b, r, f, acc);
  const keys = KEYS.filter((key) => start[key]);
  const perRow = (key: keyof Totals) => key === 'dh' || (key === 'loss' && f.loss === 'rows');
  const shape = (key: keyof Totals) => ({ loss: perRow(key) ? [null, 1] : [], dh: [null, null], dw: [null, null], db: [null] })[key];
  const { body, iter, carried } = b.loopBody(name, keys.map((key) => ({ name: `${key}_acc`, elem: key === 'loss' ? F32 : elem ?? 0, shape: shape(key) })));
  keys.forEach((key, i) => {
    if (key !== 'loss' && elem === undefined) carried[i].type = undefined;
  });
  const o = body.op;
  const from = o.Mul(o.Unsqueeze(iter, body.const([0])), chunk);
  const now = Object.fromEntries(keys.map((key, i) => [key, carried[i]])) as Totals;
  const g = linearCeChunk(body, s, sliceRows(body, r, from, o.Add(from, chunk)), f, now);
  const outs = keys.map((key) => (perRow(key) ? o.Concat(now[key]!, g[key]!, { axis: 0 }) : key === 'loss' ? o.Add(now.loss!, g.loss!) : g[key]!));
  const res = b.loop(body, b.scalar(ceilDiv(b, b.dims(r.hidden, 0, 1), chunk)), keys.map((key) => start[key]!), outs);
  return Object.fromEntries(keys.map((key, i) => [key, res[i]]));
}

/**
 * All chunks unrolled: `k` chunks of ⌈N / k⌉ rows (trailing chunks may be empty), for the webgpu
 * bodies (a Loop runs on the CPU under WebGPU EPs and copies every iteration). Per-row outputs are
 * joined by one Concat. With gradients, chunk i starts only once chunk i − 1 is complete (its loss,
 * grad_hidden rows and both accumulators): its start index adds a zero computed from them
 * (Greater(x, +inf) is false, NaN included); otherwise a runtime may order all chunks' logits first
 * and defer their loss and grad_hidden reads to the end, keeping every [c, V] tensor alive.
 */
export function unrolledChunks(b: Body, s: Shared, r: Rows, f: ChunkFlags, k: number, acc: Totals, what: string): Totals {
  if (!Number.isInteger(k) || k < 1) fail('usage', `${what} webgpu body: num_chunks must be a positive integer, got ${k}`);
  const op = b.op;
  const c = op.Div(op.Add(b.dims(r.hidden, 0, 1), b.const([k - 1])), b.const([k]));
  const inf = b.const(Infinity, F32);
  const first = (x: Value, axis: number) => b.slice(x, b.const([0]), b.const([1]), axis);
  const rows: Value[] = [];
  const dh: Value[] = [];
  let total: Value | undefined;
  let token: Value | undefined;
  for (let i = 0; i < k; i++) {
    const at = i === 0 ? b.const([0]) : op.Mul(c, b.const([i]));
    const from = token ? op.Add(at, op.Reshape(op.Cast(op.Greater(token, inf), { to: DataType.INT64 }), b.const([1]))) : at;
    const g = linearCeChunk(b, s, sliceRows(b, r, from, op.Add(from, c)), f, acc);
    if (f.loss === 'rows') rows.push(g.loss!);
    else if (f.loss) total = total ? op.Add(total, g.loss!) : g.loss;
    if (!f.grads) continue;
    dh.push(g.dh!);
    acc = { dw: g.dw, db: g.db };
    const read = [b.reduce('ReduceSum', first(first(g.dw!, 0), 1), [0, 1], false), b.reduce('ReduceSum', g.dh!, [0, 1], false)];
    if (g.db) read.push(b.reduce('ReduceSum', first(g.db, 0), [0], false));
    const done = op.CastLike(read.reduce((x, y) => op.Add(x, y)), inf);
    token = op.Add(total ? op.Add(total, done) : done, token ?? b.const(0, F32));
  }
  const join = (xs: Value[]) => (xs.length === 1 ? xs[0] : op.Concat(...xs, { axis: 0 }));
  return { loss: f.loss === 'rows' ? join(rows) : total, ...(f.grads ? { dh: join(dh), ...acc } : {}) };
}
