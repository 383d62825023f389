/**
 * Portable ONNX function bodies of ai.ortfuse::FusedLinearCrossEntropyWithGrad (math in
 * with-grad-schema.ts): loss and gradients in one pass over row chunks, as Liger-Kernel. Per chunk
 * of c rows: z = h_c·Wᵀ + b (fp32) → P = softmax(z) (lse = max z − log max P, since the largest
 * entry of P is 1/Σ exp(z − max z)) → row losses → Q = P − (1 − ε)·onehot(y) (one ScatterElements)
 * → grad_hidden rows k ⊙ (Q·W − (ε/V)·Σ_c W_c), grad_weight += Qᵀ·(k ⊙ h_c), grad_bias += kᵀ·Q.
 * k scales the [c, H] side and the ε/V term is rank one, so a chunk holds only three [c, V]
 * tensors (z, P, Q; ORT's CPU EP keeps a Loop iteration's [c, V] intermediates alive). The ε/V
 * parts of grad_weight and grad_bias, −(ε/V)·1 ⊗ kᵀ·hidden and −(ε/V)·Σk, are the accumulators'
 * initial values (no extra [V, H] tensor).
 *
 * - 'cpu': a Loop over chunks of `chunk_size` rows (0 = max(Liger's rule, 256), at most N). grad_weight and grad_bias
 *   are loop-carried accumulators (grad_weight through Gemm's C input, so one [V, H] result per
 *   chunk), the loss sum a carried scalar, and the grad_hidden rows a scan output. Scan outputs
 *   need equal shapes, so hidden, k and the labels are zero-padded to a whole number of chunks
 *   (padded rows have k = 0) and the stacked rows are cut back to N.
 * - 'webgpu': K = num_chunks unrolled chunks of ceil(N / K) rows (no Loop: under WebGPU EPs it runs
 *   on the CPU); grad_weight is a chain of Gemms through C, grad_hidden one Concat.
 */
import { fail } from '../../src/errors.js';
import { DataType } from '../../src/onnx/schema.js';
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { fusedLinearCrossEntropy, ligerChunk, DEFAULT_NUM_CHUNKS } from './function.js';
import { linearCrossEntropyWithGradSchema } from './with-grad-schema.js';

const F32 = DataType.FLOAT;
/**
 * 'cpu' default chunk: max(Liger's rule, 256) rows (at most N). Liger's rule targets GPU memory; on
 * the CPU EP its small chunks re-read and re-write the [V, H] grad_weight accumulator per chunk:
 * [4096, 896] x [896, 151936] loss+grads took 37 s at its 32 rows, 33 s at 128, 26 s at 512
 * (unfused: 32 s), for +0.3 / +0.6 GB (bench/results/train-flce-rss.md).
 */
export const MIN_CPU_CHUNK = 256;

interface Prepared {
  weight: Value;
  bias: Value;
  /** float32 scalars ε and −(1 − ε). */
  eps: Value;
  negKeep: Value;
  /** [1, H] (ε/V)·Σ_c W_c, element type of hidden. */
  dhShift: Value;
}

/** Per-row inputs of the chunks: hidden [N, H], k [N, 1] (float32 and hidden's type), safe labels [N, 1]. */
interface Rows {
  hidden: Value;
  kF: Value;
  kT: Value;
  safe: Value;
}

/** One chunk: its loss sum (scalar), grad_hidden rows [c, H], and the operands of its weight/bias updates. */
interface ChunkGrads {
  lossSum: Value;
  dh: Value;
  /** Q [c, V] in hidden's type. */
  q: Value;
  /** k ⊙ h_c [c, H]. */
  kh: Value;
  kT: Value;
}

function chunk(b: Body, p: Prepared, r: Rows): ChunkGrads {
  const op = b.op;
  const z = op.Cast(op.Gemm(r.hidden, p.weight, p.bias, { transB: 1 }), { to: F32 });
  const m = b.reduce('ReduceMax', z, [1], true);
  const zt = op.GatherElements(z, r.safe, { axis: 1 });
  const zmean = b.reduce('ReduceMean', z, [1], true);
  const sm = op.Softmax(z, { axis: 1 });
  const lse = op.Sub(m, op.Log(b.reduce('ReduceMax', sm, [1], true)));
  const rows = op.Add(op.Sub(lse, zt), op.Mul(p.eps, op.Sub(zt, zmean))); // lse − (1−ε)·z_y − ε·mean(z)
  const lossSum = b.reduce('ReduceSum', op.Where(op.Greater(r.kF, b.const(0, F32)), rows, b.const(0, F32)), [0, 1], false);
  const qF = op.ScatterElements(sm, r.safe, op.Expand(p.negKeep, op.Shape(r.safe)), { axis: 1, reduction: 'add' });
  const q = op.CastLike(qF, r.hidden);
  const dh = op.Mul(op.Sub(op.MatMul(q, p.weight), p.dhShift), r.kT);
  return { lossSum, dh, q, kh: op.Mul(r.hidden, r.kT), kT: r.kT };
}

export function buildLinearCrossEntropyWithGrad(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[] {
  if (b.opset < 16) fail('unsupported', `FusedLinearCrossEntropyWithGrad needs ONNX opset >= 16 (ScatterElements with reduction), the model imports ${b.opset}`);
  const [hidden, weight, bias, labels] = inputs;
  const op = b.op;
  const valid1 = op.Not(op.Equal(labels, b.attrConst('int', 'ignore_index')));
  const validF = op.Cast(valid1, { to: F32 });
  const count = b.reduce('ReduceSum', validF, [0], false);
  const isMean = b.attrStringIs('reduction', 'mean', opts.reduction);
  const one = b.const(1, F32);
  const eps = b.attrConst('float', 'label_smoothing');
  const epsOverV = op.Div(eps, op.Cast(b.scalar(b.dims(weight, 0, 1)), { to: F32 }));
  const kF = op.Unsqueeze(op.Mul(validF, op.Where(isMean, op.Div(one, op.Max(count, one)), one)), b.const([1]));
  const kT = op.CastLike(kF, hidden);
  const epsT = op.CastLike(epsOverV, hidden);
  const p: Prepared = {
    weight, bias, eps, negKeep: op.Sub(eps, one),
    dhShift: op.Mul(epsT, b.reduce('ReduceSum', weight, [0], true)),
  };
  const rows: Rows = { hidden, kF, kT, safe: op.Unsqueeze(op.Where(valid1, labels, b.const(0)), b.const([1])) };
  // Accumulators start at the ε/V terms: −(ε/V)·1 ⊗ kᵀ·hidden [V, H] and −(ε/V)·Σk [1, V].
  const negEps = op.Neg(epsT);
  const dw0 = op.Expand(op.Mul(negEps, op.Gemm(kT, hidden, { transA: 1 })), op.Shape(weight));
  const db0 = op.Expand(op.Mul(negEps, b.reduce('ReduceSum', kT, [0, 1], false)), op.Concat(b.const([1]), b.dims(weight, 0, 1), { axis: 0 }));
  const [total, dh, dw, db] = target === 'cpu' ? loopChunks(b, rows, p, [dw0, db0]) : unrolledChunks(b, rows, p, [dw0, db0], opts.numChunks ?? DEFAULT_NUM_CHUNKS);
  const loss = op.Div(total, op.Where(isMean, count, one)); // NaN for 'mean' when every label is ignored (torch)
  return [loss, dh, dw, op.Reshape(db, b.const([-1]))];
}

function loopChunks(b: Body, r: Rows, p: Prepared, [dw0, db0]: Value[]): Value[] {
  const op = b.op;
  const n = b.dims(r.hidden, 0, 1);
  const h = b.dims(p.weight, 1, 2);
  const one = b.const([1]);
  const requested = op.Reshape(b.attrConst('int', 'chunk_size'), one);
  const auto = op.Max(op.Min(op.Max(ligerChunk(b, n, b.dims(p.weight, 0, 1), h), b.const([MIN_CPU_CHUNK])), n), one);
  const c = op.Where(op.Greater(requested, b.const([0])), requested, auto);
  const trips = op.Div(op.Sub(op.Add(n, c), one), c);
  const zero = b.const([0]);
  const pads = op.Concat(zero, zero, op.Sub(op.Mul(trips, c), n), zero, { axis: 0 });
  const padded: Rows = { hidden: op.Pad(r.hidden, pads), kF: op.Pad(r.kF, pads), kT: op.Pad(r.kT, pads), safe: op.Pad(r.safe, pads) };

  const { body, iter, carried } = b.loopBody('linear_ce_grad_chunk', [
    { name: 'loss_acc', elem: F32, shape: [] }, { name: 'dw_acc', elem: 0 }, { name: 'db_acc', elem: 0 },
  ]);
  carried[1].type = undefined; // hidden's element type (the body is type-polymorphic): ORT takes it from the Loop's inputs
  carried[2].type = undefined;
  const o = body.op;
  const start = o.Mul(o.Unsqueeze(iter, body.const([0])), c);
  const end = o.Add(start, c);
  const slice = (x: Value): Value => body.slice(x, start, end, 0);
  const g = chunk(body, p, { hidden: slice(padded.hidden), kF: slice(padded.kF), kT: slice(padded.kT), safe: slice(padded.safe) });
  const outs = [
    o.Add(carried[0], g.lossSum),
    o.Gemm(g.q, g.kh, carried[1], { transA: 1 }),
    o.Gemm(g.kT, g.q, carried[2], { transA: 1 }),
    g.dh,
  ];
  body.b.output(o.Identity(body.graph.inputs[1]));
  for (const v of outs) body.b.output(v);
  const res = op.call('Loop', [b.scalar(trips), null, b.const(0, F32), dw0, db0], { body: body.graph }, { outputs: 4 });
  body.graph.owner = res[0].producer;
  const dh = b.slice(op.Reshape(res[3], op.Concat(b.const([-1]), h, { axis: 0 })), zero, n, 0);
  return [res[0], dh, res[1], res[2]];
}

function unrolledChunks(b: Body, r: Rows, p: Prepared, [dw0, db0]: Value[], k: number): Value[] {
  if (!Number.isInteger(k) || k < 1) fail('usage', `FusedLinearCrossEntropyWithGrad webgpu body: num_chunks must be a positive integer, got ${k}`);
  const op = b.op;
  const n = b.dims(r.hidden, 0, 1);
  const c = op.Div(op.Add(n, b.const([k - 1])), b.const([k]));
  const inf = b.const(Infinity, F32);
  let total: Value | undefined;
  let dw = dw0;
  let db = db0;
  const dh: Value[] = [];
  let token = b.const(0, F32);
  for (let i = 0; i < k; i++) {
    // Chunk i starts only once chunk i − 1 is complete (its loss, grad_hidden rows and both
    // accumulators): its start index adds a zero computed from them (Greater(x, +inf) is false,
    // NaN included). Otherwise a runtime may order all chunks' logits first and defer their loss
    // and grad_hidden reads to the end, keeping every [c, V] tensor alive.
    const after = op.Reshape(op.Cast(op.Greater(token, inf), { to: DataType.INT64 }), b.const([1]));
    const start = op.Add(op.Mul(c, b.const([i])), after);
    const end = op.Add(start, c);
    const slice = (x: Value): Value => b.slice(x, start, end, 0);
    const g = chunk(b, p, { hidden: slice(r.hidden), kF: slice(r.kF), kT: slice(r.kT), safe: slice(r.safe) });
    total = total ? op.Add(total, g.lossSum) : g.lossSum;
    dw = op.Gemm(g.q, g.kh, dw, { transA: 1 });
    db = op.Gemm(g.kT, g.q, db, { transA: 1 });
    dh.push(g.dh);
    const corner = (x: Value): Value => b.reduce('ReduceSum', b.slice(b.slice(x, b.const([0]), b.const([1]), 0), b.const([0]), b.const([1]), 1), [0, 1], false);
    token = op.Add(op.Add(total, op.CastLike(op.Add(op.Add(corner(dw), corner(db)), b.reduce('ReduceSum', g.dh, [0, 1], false)), inf)), token);
  }
  return [total!, dh.length === 1 ? dh[0] : op.Concat(...dh, { axis: 0 }), dw, db];
}

export const fusedLinearCrossEntropyWithGrad: FusedOp = {
  schema: linearCrossEntropyWithGradSchema,
  buildBody: buildLinearCrossEntropyWithGrad,
  bodyOptions: fusedLinearCrossEntropy.bodyOptions,
};
