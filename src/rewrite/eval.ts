/**
 * Evaluation of small constant subgraphs in JS (for constant folding): the shape and index ops
 * of exported graphs. Results keep ONNX's element types exactly: integer arithmetic wraps like
 * the C++ kernels, float32 results are rounded to float32, Range accumulates in its own type.
 * Returns undefined for anything it does not handle exactly (unknown op or dtype, integer
 * division by zero, float16 data, ...).
 */
import { DataType } from '../onnx/schema.js';
import type { Node } from '../ir/graph.js';
import { numel, Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/types.js';
import { arith, castTo, compare, FLOATS, foldableType, INT_BITS, isBig, logical, Skip, skip, wrap, type Data, type Scalar } from './eval-scalar.js';

/** Largest tensor (elements) read or produced by folding. */
export const FOLD_LIMIT = 1024;

function data(t: Tensor): Data {
  if (!foldableType(t.dtype) || t.size > FOLD_LIMIT) skip();
  return Array.from(t.toArray() as ArrayLike<Scalar>);
}

function make(dtype: number, dims: number[], values: Data): Tensor {
  if (numel(dims) > FOLD_LIMIT) skip();
  return Tensor.from(dtype, dims, values as number[]);
}

function ints(t: Tensor | undefined): number[] | undefined {
  return t ? data(t).map(Number) : undefined;
}

function strides(dims: number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/** Multidirectional (numpy) broadcast of shapes. */
function broadcastDims(shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + i] ?? 1;
      if (x !== 1) {
        if (d !== 1 && d !== x) skip();
        d = x;
      }
    }
    out.push(d);
  }
  return out;
}

/** For each output element, the flat index into an input of shape `dims` broadcast to `out`. */
function bcastIndex(out: number[], dims: number[]): number[] {
  const n = numel(out);
  const st = strides(dims);
  const idx = new Array<number>(n);
  const off = out.length - dims.length;
  for (let k = 0; k < n; k++) {
    let rem = k;
    let j = 0;
    for (let a = out.length - 1; a >= 0; a--) {
      const c = rem % out[a];
      rem = (rem - c) / out[a];
      const ia = a - off;
      if (ia >= 0 && dims[ia] !== 1) j += c * st[ia];
    }
    idx[k] = j;
  }
  return idx;
}

function elementwise(ts: Tensor[], outType: number, f: (...xs: Scalar[]) => Scalar): Tensor {
  const out = broadcastDims(ts.map((t) => t.dims));
  if (numel(out) > FOLD_LIMIT) skip();
  const ds = ts.map(data);
  const idx = ts.map((t) => bcastIndex(out, t.dims));
  const res: Data = [];
  for (let k = 0; k < numel(out); k++) res.push(f(...ds.map((d, i) => d[idx[i][k]])));
  return make(outType, out, res);
}

/** CumSum along `axis` (exclusive / reverse as the attributes say), in the input's type. */
function cumsum(n: Node, t: Tensor, axisT: Tensor): Tensor {
  const dt = t.dtype;
  if (!FLOATS.has(dt) && !(dt in INT_BITS)) skip();
  const ax = axisOf(Number(data(axisT)[0]), t.dims.length);
  const exclusive = n.attrInt('exclusive', 0) === 1, reverse = n.attrInt('reverse', 0) === 1;
  const d = data(t), out: Data = d.slice();
  const len = t.dims[ax], inner = numel(t.dims.slice(ax + 1)), outer = numel(t.dims.slice(0, ax));
  const zero: Scalar = FLOATS.has(dt) ? 0 : isBig(dt) ? 0n : 0;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let acc = zero;
      for (let j0 = 0; j0 < len; j0++) {
        const j = reverse ? len - 1 - j0 : j0;
        const k = (o * len + j) * inner + i;
        if (exclusive) { out[k] = acc; acc = arith('Add', dt, acc, d[k]); }
        else { acc = arith('Add', dt, acc, d[k]); out[k] = acc; }
      }
    }
  return make(dt, t.dims, out);
}

/** GatherND with batch_dims = 0: each index row addresses a slice of `t`. */
function gatherNd(n: Node, t: Tensor, idx: Tensor): Tensor {
  if (n.attrInt('batch_dims', 0) !== 0) skip();
  const k = idx.dims[idx.dims.length - 1] ?? skip();
  if (k > t.dims.length) skip();
  const d = data(t), ix = ints(idx)!;
  const rows = ix.length / Math.max(k, 1), inner = numel(t.dims.slice(k)), st = strides(t.dims);
  const res: Data = [];
  for (let r = 0; r < (k ? rows : 0); r++) {
    let off = 0;
    for (let a = 0; a < k; a++) {
      let i = ix[r * k + a];
      if (i < 0) i += t.dims[a];
      if (i < 0 || i >= t.dims[a]) skip();
      off += i * st[a];
    }
    res.push(...d.slice(off, off + inner));
  }
  return make(t.dtype, [...idx.dims.slice(0, -1), ...t.dims.slice(k)], res);
}

function axisOf(a: number, rank: number): number {
  const r = a < 0 ? a + rank : a;
  if (r < 0 || r >= rank) skip();
  return r;
}

/** The axes of Unsqueeze/Squeeze/ReduceX: input 1 (opset >= 13) or the `axes` attribute. */
function axesOf(n: Node, ins: (Tensor | undefined)[]): number[] | undefined {
  return ins[1] ? ints(ins[1]) : n.attributes.has('axes') ? n.attrInts('axes') : undefined;
}

function reshape(t: Tensor, dims: number[]): Tensor {
  return make(t.dtype, dims, data(t));
}

/**
 * Evaluate node `n` on constant inputs (`ins[i]` undefined where input i is absent).
 * `inShape` is the (possibly symbolic) shape of input 0 (for Shape/Size, whose data is not needed).
 */
export function evalNode(n: Node, ins: (Tensor | undefined)[], inShape?: Dim[]): Tensor[] | undefined {
  try {
    return evalOp(n, ins, inShape);
  } catch (e) {
    if (e instanceof Skip) return undefined;
    throw e;
  }
}

function evalOp(n: Node, ins: (Tensor | undefined)[], inShape?: Dim[]): Tensor[] | undefined {
  const [a, b] = ins;
  const need = (t: Tensor | undefined): Tensor => t ?? skip();
  switch (n.opType) {
    case 'Identity': return need(a).size > FOLD_LIMIT ? undefined : [a!];
    case 'Shape': case 'Size': {
      if (!inShape || !inShape.every((d): d is number => typeof d === 'number')) return undefined;
      if (n.opType === 'Size') return [make(DataType.INT64, [], [BigInt(numel(inShape))])];
      const r = inShape.length;
      const clamp = (x: number): number => Math.min(Math.max(x < 0 ? x + r : x, 0), r);
      const s = clamp(n.attrInt('start', 0));
      const e = clamp(n.attrInt('end', r));
      const dims = inShape.slice(s, Math.max(s, e));
      return [make(DataType.INT64, [dims.length], dims.map(BigInt))];
    }
    case 'Cast': {
      const to = n.attrInt('to');
      const t = need(a);
      if (!foldableType(to)) return undefined;
      return [make(to, t.dims, data(t).map((v) => castTo(to, t.dtype, v)))];
    }
    case 'Add': case 'Sub': case 'Mul': case 'Div': {
      const dt = need(a).dtype;
      if (need(b).dtype !== dt) return undefined;
      return [elementwise([a!, b!], dt, (x, y) => arith(n.opType, dt, x, y))];
    }
    case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual':
      if (need(a).dtype !== need(b).dtype) return undefined;
      return [elementwise([a!, b!], DataType.BOOL, (x, y) => compare(n.opType, x, y))];
    case 'And': case 'Or': case 'Xor':
      return [elementwise([need(a), need(b)], DataType.BOOL, (x, y) => logical(n.opType, x, y))];
    case 'Max': case 'Min': {
      const ts = ins.map(need);
      if (ts.some((t) => t.dtype !== ts[0].dtype) || !(FLOATS.has(ts[0].dtype) || ts[0].dtype in INT_BITS)) return undefined;
      const pick = (x: Scalar, y: Scalar): Scalar => ((n.opType === 'Max' ? x >= y : x <= y) ? x : y);
      if (ts.some((t) => FLOATS.has(t.dtype) && data(t).some((x) => Number.isNaN(Number(x))))) return undefined; // NaN propagation: left to the runtime
      return [elementwise(ts, ts[0].dtype, (...xs) => xs.reduce(pick))];
    }
    case 'CumSum': return [cumsum(n, need(a), need(b))];
    case 'GatherND': return [gatherNd(n, need(a), need(b))];
    case 'Not': return [elementwise([need(a)], DataType.BOOL, (x) => (Number(x) ? 0 : 1))];
    case 'Neg': {
      const dt = need(a).dtype;
      return [elementwise([a!], dt, (x) => (FLOATS.has(dt) ? -Number(x) : arith('Sub', dt, isBig(dt) ? 0n : 0, x)))];
    }
    case 'Where': return [elementwise([need(a), need(b), need(ins[2])], b!.dtype, (c, x, y) => (Number(c) ? x : y))];
    case 'Expand': return [expandTo(need(a), broadcastDims([a!.dims, ints(need(b))!]))];
    case 'Concat': {
      const ts = ins.map(need);
      const r = ts[0].dims.length;
      const ax = axisOf(n.attrInt('axis'), r);
      if (ts.some((t) => t.dtype !== ts[0].dtype || t.dims.length !== r)) return undefined;
      const outer = numel(ts[0].dims.slice(0, ax));
      const res: Data = [];
      const ds = ts.map(data);
      for (let o = 0; o < outer; o++)
        ts.forEach((t, i) => {
          const chunk = numel(t.dims.slice(ax));
          res.push(...ds[i].slice(o * chunk, (o + 1) * chunk));
        });
      const dims = ts[0].dims.slice();
      dims[ax] = ts.reduce((s, t) => s + t.dims[ax], 0);
      return [make(ts[0].dtype, dims, res)];
    }
    case 'Gather': {
      const t = need(a);
      const ax = axisOf(n.attrInt('axis', 0), t.dims.length);
      const idx = ints(need(b))!.map((i) => (i < 0 ? i + t.dims[ax] : i));
      if (idx.some((i) => i < 0 || i >= t.dims[ax])) return undefined;
      const d = data(t);
      const outer = numel(t.dims.slice(0, ax));
      const inner = numel(t.dims.slice(ax + 1));
      const res: Data = [];
      for (let o = 0; o < outer; o++)
        for (const i of idx) res.push(...d.slice((o * t.dims[ax] + i) * inner, (o * t.dims[ax] + i + 1) * inner));
      return [make(t.dtype, [...t.dims.slice(0, ax), ...b!.dims, ...t.dims.slice(ax + 1)], res)];
    }
    case 'Unsqueeze': {
      const t = need(a);
      const axes = axesOf(n, ins) ?? skip();
      const r = t.dims.length + axes.length;
      const norm = axes.map((x) => axisOf(x, r)).sort((x, y) => x - y);
      const dims = t.dims.slice();
      for (const x of norm) dims.splice(x, 0, 1);
      return [reshape(t, dims)];
    }
    case 'Squeeze': {
      const t = need(a);
      const axes = axesOf(n, ins)?.map((x) => axisOf(x, t.dims.length));
      if (axes?.some((x) => t.dims[x] !== 1)) return undefined;
      return [reshape(t, t.dims.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)))];
    }
    case 'Reshape': {
      const t = need(a);
      const shape = ints(need(b))!;
      const allowZero = n.attrInt('allowzero', 0) === 1;
      const dims = shape.map((d, i) => (d === 0 && !allowZero ? t.dims[i] ?? skip() : d));
      const known = dims.filter((d) => d !== -1);
      if (dims.length - known.length > 1) return undefined;
      const k = numel(known);
      const dimsOut = dims.map((d) => (d === -1 ? (k ? t.size / k : skip()) : d));
      if (numel(dimsOut) !== t.size || dimsOut.some((d) => !Number.isInteger(d))) return undefined;
      return [reshape(t, dimsOut)];
    }
    case 'Slice': return slice(n, ins);
    case 'Range': {
      const [s, l, d] = [need(a), need(b), need(ins[2])];
      const dt = s.dtype;
      const [start, limit, delta] = [data(s)[0], data(l)[0], data(d)[0]];
      if (FLOATS.has(dt)) {
        const f = dt === DataType.FLOAT ? Math.fround : (x: number) => x;
        const count = Math.max(Math.ceil(f(Number(limit) - Number(start)) / Number(delta)), 0);
        if (count > FOLD_LIMIT) return undefined;
        const res: number[] = [];
        for (let i = 0, v = Number(start); i < count; i++, v = f(v + Number(delta))) res.push(v);
        return [make(dt, [count], res)];
      }
      if (!(dt in INT_BITS) || BigInt(delta) === 0n) return undefined;
      const diff = BigInt(limit) - BigInt(start);
      const dl = BigInt(delta);
      const count = Number(diff / dl + (diff % dl !== 0n && diff > 0n === dl > 0n ? 1n : 0n));
      if (count > FOLD_LIMIT) return undefined;
      const res: Data = [];
      for (let i = 0; i < Math.max(count, 0); i++) res.push(wrap(dt, BigInt(start) + BigInt(i) * dl));
      return [make(dt, [Math.max(count, 0)], res)];
    }
    case 'ConstantOfShape': {
      const dims = ints(need(a))!;
      const v = n.attrTensor('value') ?? Tensor.from(DataType.FLOAT, [1], [0]);
      const fill = data(v)[0];
      return [make(v.dtype, dims, new Array(numel(dims)).fill(fill))];
    }
    default: return undefined;
  }
}

function expandTo(t: Tensor, out: number[]): Tensor {
  if (numel(out) > FOLD_LIMIT) skip();
  const d = data(t);
  const idx = bcastIndex(out, t.dims);
  return make(t.dtype, out, idx.map((i) => d[i]));
}

/** Slice-10+ (starts, ends, axes, steps as inputs), with ONNX's clamping rules. */
function slice(n: Node, ins: (Tensor | undefined)[]): Tensor[] | undefined {
  const t = ins[0] ?? skip();
  if (!ins[1] || !ins[2]) return undefined; // Slice-1 (attributes) is not folded
  const r = t.dims.length;
  const starts = ints(ins[1])!, ends = ints(ins[2])!;
  const axes = ints(ins[3]) ?? starts.map((_, i) => i);
  const steps = ints(ins[4]) ?? starts.map(() => 1);
  const st = t.dims.map(() => 0), en = t.dims.slice(), sp = t.dims.map(() => 1);
  axes.forEach((ax0, i) => {
    const ax = axisOf(ax0, r);
    const dim = t.dims[ax];
    const step = steps[i];
    if (step === 0) skip();
    let s = starts[i] < 0 ? starts[i] + dim : starts[i];
    let e = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (step > 0) {
      s = Math.min(Math.max(s, 0), dim);
      e = Math.min(Math.max(e, 0), dim);
    } else {
      s = Math.min(Math.max(s, 0), dim - 1);
      e = Math.min(Math.max(e, -1), dim - 1);
    }
    [st[ax], en[ax], sp[ax]] = [s, e, step];
  });
  const outDims = t.dims.map((_, ax) => Math.max(0, Math.ceil((en[ax] - st[ax]) / sp[ax])));
  const d = data(t);
  const inStr = strides(t.dims);
  const res: Data = [];
  const total = numel(outDims);
  for (let k = 0; k < total; k++) {
    let rem = k, j = 0;
    for (let ax = r - 1; ax >= 0; ax--) {
      const c = rem % outDims[ax];
      rem = (rem - c) / outDims[ax];
      j += (st[ax] + c * sp[ax]) * inStr[ax];
    }
    res.push(d[j]);
  }
  return [make(t.dtype, outDims, res)];
}
