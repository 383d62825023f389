/** Inference rules for compute ops: MatMul/Gemm/Einsum, reductions, losses, norms, Attention. */
import { DataType } from '../../onnx/schema.js';
import type { Dim } from '../types.js';
import { broadcastShapes, normAxis, tt, unifyDim, unknownDims, type InferContext, type InferRule } from './context.js';
import { dimAdd, dimDiv, dimMul } from './dims.js';

const matmul: InferRule = (_n, c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const e = c.elem(0) ?? 0;
  if (!a || !b) return [tt(e)];
  if (a.length === 0 || b.length === 0) throw new Error('MatMul of a scalar');
  const a2 = a.length === 1 ? [1, a[0]] : a;
  const b2 = b.length === 1 ? [b[0], 1] : b;
  const batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)])!;
  const out: Dim[] = [...batch];
  if (a.length > 1) out.push(a2[a2.length - 2]);
  if (b.length > 1) out.push(b2[b2.length - 1]);
  return [tt(e, out)];
};

/** Reductions: `axes` is an attribute before `inputFrom`, an input from then on. */
function reduce(inputFrom: number): InferRule {
  return (_n, c) => {
    const e = c.elem(0) ?? 0;
    const s = c.shape(0);
    const keep = (c.attrInt('keepdims') ?? 1) !== 0;
    const axes = c.opset < inputFrom ? c.attrInts('axes') : c.has(1) ? (c.ints(1) ?? null) : undefined;
    if (!s) return [tt(e)];
    if (axes === null) return [tt(e, keep ? unknownDims(s.length) : undefined)];
    if (!axes || axes.length === 0) {
      if ((c.attrInt('noop_with_empty_axes') ?? 0) !== 0) return [tt(e, s.slice())];
      return [tt(e, keep ? s.map(() => 1) : [])];
    }
    const red = new Set(axes.map((a) => normAxis(a, s.length)));
    return [tt(e, keep ? s.map((d, i) => (red.has(i) ? 1 : d)) : s.filter((_, i) => !red.has(i)))];
  };
}

const argReduce: InferRule = (_n, c) => {
  const s = c.shape(0);
  if (!s) return [tt(DataType.INT64)];
  const a = normAxis(c.attrInt('axis') ?? 0, s.length);
  const keep = (c.attrInt('keepdims') ?? 1) !== 0;
  return [tt(DataType.INT64, keep ? s.map((d, i) => (i === a ? 1 : d)) : s.filter((_, i) => i !== a))];
};

/** SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: scores [N, C, d...], labels [N, d...]. */
const loss: InferRule = (n, c) => {
  const e = c.elem(0) ?? 0;
  const reduction = c.attrString('reduction') ?? 'mean';
  const labels = c.shape(1);
  const scores = c.shape(0);
  let lossShape: Dim[] | undefined = [];
  if (reduction === 'none') {
    lossShape = labels?.slice() ?? (scores && [scores[0], ...scores.slice(2)]);
    if (labels && scores) lossShape = labels.map((d, i) => unifyDim(d, scores[i === 0 ? 0 : i + 1]));
  }
  const out = [tt(e, lossShape)];
  if (n.outputs.length > 1) out.push(tt(e, scores?.slice()));
  return out;
};

const gemm: InferRule = (_n, c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const ta = (c.attrInt('transA') ?? 0) !== 0;
  const tb = (c.attrInt('transB') ?? 0) !== 0;
  return [tt(c.elem(0) ?? 0, [a ? a[ta ? 1 : 0] : null, b ? b[tb ? 0 : 1] : null])];
};

const layerNorm: InferRule = (n, c) => {
  const s = c.shape(0);
  const e = c.elem(0) ?? 0;
  const stash = (c.attrInt('stash_type') ?? 1) === 1 ? DataType.FLOAT : e;
  let stat: Dim[] | undefined;
  if (s) {
    const a = normAxis(c.attrInt('axis') ?? -1, s.length);
    stat = s.map((d, i) => (i < a ? d : 1));
  }
  return [tt(e, s?.slice()), ...n.outputs.slice(1).map(() => tt(stash, stat?.slice()))];
};

/** Attention (opset 23): Q/K/V either 4-D [B, H, S, D] or 3-D [B, S, H*D]. */
const attention: InferRule = (n, c) => {
  const e = c.elem(0) ?? 0;
  const [q, k, v] = [c.shape(0), c.shape(1), c.shape(2)];
  const qh = c.attrInt('q_num_heads');
  const kvh = c.attrInt('kv_num_heads');
  const heads = (s: Dim[] | undefined, h: number | undefined): [Dim, Dim, Dim, Dim] | undefined => {
    if (!s) return undefined;
    if (s.length === 4) return [s[0], s[1], s[2], s[3]];
    if (s.length === 3) return [s[0], h ?? null, s[1], h ? dimDiv(s[2], h) : null];
    throw new Error(`Attention input of rank ${s.length}`);
  };
  const Q = heads(q, qh);
  const K = heads(k, kvh);
  const V = heads(v, kvh);
  const past = c.has(4) ? c.shape(4) : undefined;
  const kvSeq = K ? (c.has(4) ? (past ? dimAdd(past[2], K[2]) : null) : K[2]) : null;
  const batch = unifyDim(Q?.[0] ?? null, K?.[0] ?? null);
  let y: Dim[] | undefined;
  if (q && Q) y = q.length === 4 ? [batch, Q[1], Q[2], V?.[3] ?? null] : [batch, Q[2], V && Q[1] !== null ? dimMul(Q[1], V[3]) : null];
  const present = (X: typeof K) => tt(e, X ? [batch, X[1], kvSeq, X[3]] : unknownDims(4));
  const out = [tt(e, y), present(K), present(V), tt(e, [batch, Q?.[1] ?? null, Q?.[2] ?? null, kvSeq])];
  return out.slice(0, n.outputs.length);
};

/** Einsum with explicit (`ij,jk->ik`) or implicit output and `...` broadcasting. */
const einsum: InferRule = (n, c) => {
  const e = c.elem(0) ?? 0;
  const eq = (c.attrString('equation') ?? '').replace(/\s/g, '');
  const [lhs, rhs] = eq.split('->');
  const terms = lhs.split(',');
  const letters = new Map<string, Dim>();
  const counts = new Map<string, number>();
  const ell: Dim[][] = [];
  for (let i = 0; i < terms.length; i++) {
    const s = c.shape(i);
    if (!s) return [tt(e)];
    const [pre, post] = terms[i].includes('...') ? terms[i].split('...') : [terms[i], undefined];
    const nEll = post === undefined ? 0 : s.length - pre.length - post.length;
    if (post !== undefined) ell.push(s.slice(pre.length, pre.length + nEll));
    const chars = [...pre, ...(post ?? '')];
    chars.forEach((ch, j) => {
      const d = s[j < pre.length ? j : j + nEll];
      letters.set(ch, letters.has(ch) ? (letters.get(ch) === 1 ? d : d === 1 ? letters.get(ch)! : unifyDim(letters.get(ch)!, d)) : d);
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
    });
  }
  const ellDims = broadcastShapes(ell) ?? [];
  const outTerm = rhs ?? `${ell.length ? '...' : ''}${[...counts].filter(([, k]) => k === 1).map(([ch]) => ch).sort().join('')}`;
  const [opre, opost] = outTerm.includes('...') ? outTerm.split('...') : [outTerm, undefined];
  const out: Dim[] = [...opre].map((ch) => letters.get(ch) ?? null);
  if (opost !== undefined) out.push(...ellDims, ...[...opost].map((ch) => letters.get(ch) ?? null));
  return [tt(e, out)].slice(0, n.outputs.length);
};

/** Rules keyed by op type (default ONNX domain). */
export const NN_RULES: Record<string, InferRule> = {
  MatMul: matmul,
  Gemm: gemm,
  Einsum: einsum,
  ReduceSum: reduce(13),
  ...Object.fromEntries(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceLogSumExp', 'ReduceLogSum',
    'ReduceL1', 'ReduceL2', 'ReduceSumSquare'].map((op) => [op, reduce(18)])),
  ArgMax: argReduce,
  ArgMin: argReduce,
  SoftmaxCrossEntropyLoss: loss,
  NegativeLogLikelihoodLoss: loss,
  LayerNormalization: layerNorm,
  Attention: attention,
};
