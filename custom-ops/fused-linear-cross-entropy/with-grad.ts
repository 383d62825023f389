/**
 * Portable ONNX function bodies of ai.ortfuse::FusedLinearCrossEntropyWithGrad (math in
 * with-grad-schema.ts): loss and gradients in one pass over row chunks, as Liger-Kernel. Per chunk
 * of c rows: z = h_c·Wᵀ + b (fp32) → max-subtracted log-sum-exp → row losses → dZ (ignored rows
 * zero, scaled by k_i, label smoothing) → grad_hidden rows dZ·W, grad_weight += dZᵀ·h_c,
 * grad_bias += Σ dZ. A [c, V] logits chunk is the largest temporary besides the [V, H] accumulator.
 *
 * - 'cpu': a Loop over chunks of `chunk_size` rows (0 = Liger's rule). grad_weight and grad_bias
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
import type { Body } from '../body.js';
import type { BodyOptions, FusedOp, Target } from '../types.js';
import { fusedLinearCrossEntropy, ligerChunk, DEFAULT_NUM_CHUNKS } from './function.js';
import { linearCrossEntropyWithGradSchema } from './with-grad-schema.js';

const F32 = DataType.FLOAT;

interface Prepared {
  hidden: Value;
  weight: Value;
  bias: Value;
  /** [N, 1] labels with ignored rows set to class 0. */
  safe: Value;
  /** [N, 1] float32 k_i (0 on ignored rows). */
  k: Value;
  /** float32 scalars ε, −(1 − ε) and ε / V. */
  eps: Value;
  negKeep: Value;
  epsOverV: Value;
}

/** One chunk's loss sum (scalar), grad_hidden rows [c, H], dZ (element type of hidden) and its rows of hidden. */
interface ChunkGrads {
  lossSum: Value;
  dh: Value;
  dz: Value;
  hc: Value;
}

function chunk(b: Body, p: Prepared, hc: Value, kc: Value, sc: Value): ChunkGrads {
  const op = b.op;
  const z = op.Cast(op.Gemm(hc, p.weight, p.bias, { transB: 1 }), { to: F32 });
  const m = b.reduce('ReduceMax', z, [1], true);
  const e = op.Exp(op.Sub(z, m));
  const s = b.reduce('ReduceSum', e, [1], true);
  const lse = op.Add(op.Log(s), m);
  const zt = op.GatherElements(z, sc, { axis: 1 });
  const zmean = b.reduce('ReduceMean', z, [1], true);
  const rows = op.Add(op.Sub(lse, zt), op.Mul(p.eps, op.Sub(zt, zmean))); // lse − (1−ε)·z_y − ε·mean(z)
  const valid = op.Greater(kc, b.const(0, F32));
  const lossSum = b.reduce('ReduceSum', op.Where(valid, rows, b.const(0, F32)), [0, 1], false);
  const soft = op.Mul(op.Sub(op.Div(e, s), p.epsOverV), kc);
  const dzF = op.ScatterElements(soft, sc, op.Mul(kc, p.negKeep), { axis: 1, reduction: 'add' });
  const dz = op.CastLike(dzF, hc);
  return { lossSum, dh: op.MatMul(dz, p.weight), dz, hc };
}

export function buildLinearCrossEntropyWithGrad(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[] {
  if (b.opset < 16) fail('unsupported', `FusedLinearCrossEntropyWithGrad needs ONNX opset >= 16 (ScatterElements with reduction), the model imports ${b.opset}`);
  const [hidden, weight, bias, labels] = inputs;
  const op = b.op;
  const valid1 = op.Not(op.Equal(labels, b.attrConst('int', 'ignore_index')));
  const validF = op.Cast(valid1, { to: F32 });
  const count = b.reduce('ReduceSum', validF, [0], false);
  const isMean = b.stringEquals(b.attrConst('string', 'reduction'), 'mean');
  const one = b.const(1, F32);
  const kScale = op.Where(isMean, op.Div(one, op.Max(count, one)), one);
  const eps = b.attrConst('float', 'label_smoothing');
  const vF = op.Cast(b.scalar(b.dims(weight, 0, 1)), { to: F32 });
  const p: Prepared = {
    hidden, weight, bias,
    safe: op.Unsqueeze(op.Where(valid1, labels, b.const(0)), b.const([1])),
    k: op.Unsqueeze(op.Mul(validF, kScale), b.const([1])),
    eps, negKeep: op.Sub(eps, one), epsOverV: op.Div(eps, vF),
  };
  const [total, dh, dw, db] = target === 'cpu' ? loopChunks(b, p) : unrolledChunks(b, p, opts.numChunks ?? DEFAULT_NUM_CHUNKS);
  const loss = op.Div(total, op.Where(isMean, count, one)); // NaN for 'mean' when every label is ignored (torch)
  return [loss, dh, dw, db];
}

function loopChunks(b: Body, p: Prepared): Value[] {
  const op = b.op;
  const n = b.dims(p.hidden, 0, 1);
  const h = b.dims(p.weight, 1, 2);
  const one = b.const([1]);
  const requested = op.Reshape(b.attrConst('int', 'chunk_size'), one);
  const c = op.Where(op.Greater(requested, b.const([0])), requested, ligerChunk(b, n, b.dims(p.weight, 0, 1), h));
  const trips = op.Div(op.Sub(op.Add(n, c), one), c);
  const zero = b.const([0]);
  const pads = op.Concat(zero, zero, op.Sub(op.Mul(trips, c), n), zero, { axis: 0 });
  const hp = op.Pad(p.hidden, pads);
  const kp = op.Pad(p.k, pads);
  const sp = op.Pad(p.safe, pads);

  const zeroT = op.CastLike(b.const(0, F32), p.hidden);
  const init = [b.const(0, F32), op.Expand(zeroT, op.Shape(p.weight)), op.Expand(zeroT, b.dims(p.weight, 0, 1))];
  const { body, iter, carried } = b.loopBody('linear_ce_grad_chunk', [
    { name: 'loss_acc', elem: F32, shape: [] }, { name: 'dw_acc', elem: 0, shape: [null, null] }, { name: 'db_acc', elem: 0, shape: [null] },
  ]);
  carried[1].type = undefined; // element type of hidden (the body is type-polymorphic): ORT infers it from the Loop's inputs
  carried[2].type = undefined;
  const o = body.op;
  const start = o.Mul(o.Unsqueeze(iter, body.const([0])), c);
  const end = o.Add(start, c);
  const rows = (x: Value): Value => body.slice(x, start, end, 0);
  const g = chunk(body, p, rows(hp), rows(kp), rows(sp));
  const outs = [
    o.Add(carried[0], g.lossSum),
    o.Gemm(g.dz, g.hc, carried[1], { transA: 1 }),
    o.Add(carried[2], body.reduce('ReduceSum', g.dz, [0], false)),
    g.dh,
  ];
  body.b.output(o.Identity(body.graph.inputs[1]));
  for (const v of outs) body.b.output(v);
  const res = op.call('Loop', [b.scalar(trips), null, ...init], { body: body.graph }, { outputs: 4 });
  body.graph.owner = res[0].producer;
  const dh = b.slice(op.Reshape(res[3], op.Concat(b.const([-1]), h, { axis: 0 })), zero, n, 0);
  return [res[0], dh, res[1], res[2]];
}

function unrolledChunks(b: Body, p: Prepared, k: number): Value[] {
  if (!Number.isInteger(k) || k < 1) fail('usage', `FusedLinearCrossEntropyWithGrad webgpu body: num_chunks must be a positive integer, got ${k}`);
  const op = b.op;
  const n = b.dims(p.hidden, 0, 1);
  const c = op.Div(op.Add(n, b.const([k - 1])), b.const([k]));
  let total: Value | undefined;
  let dw: Value | undefined;
  let db: Value | undefined;
  const dh: Value[] = [];
  for (let i = 0; i < k; i++) {
    const start = i === 0 ? b.const([0]) : op.Mul(c, b.const([i]));
    const end = op.Add(start, c);
    const rows = (x: Value): Value => b.slice(x, start, end, 0);
    const g = chunk(b, p, rows(p.hidden), rows(p.k), rows(p.safe));
    const dbi = b.reduce('ReduceSum', g.dz, [0], false);
    total = total ? op.Add(total, g.lossSum) : g.lossSum;
    dw = dw ? op.Gemm(g.dz, g.hc, dw, { transA: 1 }) : op.Gemm(g.dz, g.hc, { transA: 1 });
    db = db ? op.Add(db, dbi) : dbi;
    dh.push(g.dh);
  }
  return [total!, dh.length === 1 ? dh[0] : op.Concat(...dh, { axis: 0 }), dw!, db!];
}

export const fusedLinearCrossEntropyWithGrad: FusedOp = {
  schema: linearCrossEntropyWithGradSchema,
  buildBody: buildLinearCrossEntropyWithGrad,
  bodyOptions: fusedLinearCrossEntropy.bodyOptions,
};
