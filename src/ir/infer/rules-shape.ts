/** Inference rules for ops that move, index or create tensors (Reshape, Slice, Gather, Shape, ...). */
import { DataType } from '../../onnx/schema.js';
import type { Dim } from '../types.js';
import { broadcastShapes, normAxis, tt, unifyDim, unknownDims, type InferContext, type InferRule } from './context.js';
import { dimAdd, dimDiv, dimMul, dimProduct, dimSub } from './dims.js';
import { sliceLength } from './slice.js';

/** Axes from the attribute (before `inputFromOpset`) or from input `i`; null = present but unknown. */
function axesOf(c: InferContext, i: number, inputFromOpset: number): number[] | undefined | null {
  if (c.opset < inputFromOpset) return c.attrInts('axes');
  if (!c.has(i)) return undefined;
  return c.ints(i) ?? null;
}

/** The length of a 1-D input (from its known value or its static shape). */
function lengthOf(c: InferContext, i: number): number | undefined {
  const v = c.value(i);
  if (v) return v.values.length;
  const s = c.shape(i);
  return s?.length === 1 && typeof s[0] === 'number' ? s[0] : undefined;
}

function reshapeDims(inShape: Dim[] | undefined, target: Dim[], allowzero: boolean): Dim[] {
  const out = target.map((d, i): Dim => {
    if (d === 0 && !allowzero) return inShape ? (inShape[i] ?? null) : null;
    if (typeof d === 'number' && d < -1) throw new Error(`invalid Reshape dim ${d}`);
    return d === -1 ? null : d;
  });
  const neg = target.indexOf(-1);
  if (neg >= 0 && inShape) out[neg] = dimDiv(dimProduct(inShape), dimProduct(out.filter((_, i) => i !== neg)));
  return out;
}

function splitSizes(c: InferContext, dim: Dim, outputs: number): Dim[] {
  const explicit = c.opset >= 13 ? (c.has(1) ? c.value(1)?.values : undefined) : c.attrInts('split');
  if (explicit) return explicit;
  if (c.opset >= 13 && c.has(1)) return unknownDims(outputs);
  const n = c.attrInt('num_outputs') ?? outputs;
  if (typeof dim === 'number') {
    const chunk = Math.ceil(dim / n);
    return Array.from({ length: outputs }, (_, k) => Math.max(0, Math.min(chunk, dim - k * chunk)));
  }
  return Array.from({ length: outputs }, () => dimDiv(dim, n));
}

function constantType(c: InferContext): ReturnType<InferRule>[number] {
  const t = c.attrTensor('value');
  if (t) return tt(t.dtype, t.dims.slice());
  const a = (name: string): any[] | undefined => c.attr(name)?.value;
  if (c.attr('value_float')) return tt(DataType.FLOAT, []);
  if (c.attr('value_floats')) return tt(DataType.FLOAT, [a('value_floats')!.length]);
  if (c.attr('value_int')) return tt(DataType.INT64, []);
  if (c.attr('value_ints')) return tt(DataType.INT64, [a('value_ints')!.length]);
  if (c.attr('value_string')) return tt(DataType.STRING, []);
  if (c.attr('value_strings')) return tt(DataType.STRING, [a('value_strings')!.length]);
  const sp = c.attr('sparse_value')?.value?.sparse_tensor;
  if (sp?.dims) return tt(sp.values?.data_type ?? 0, sp.dims.map(Number));
  return undefined;
}

/** Rules keyed by op type (default ONNX domain). */
export const SHAPE_RULES: Record<string, InferRule> = {
  Reshape: (_n, c) => {
    const e = c.elem(0) ?? 0;
    const target = c.value(1)?.values;
    if (!target) {
      const r = lengthOf(c, 1);
      return [tt(e, r === undefined ? undefined : unknownDims(r))];
    }
    return [tt(e, reshapeDims(c.shape(0), target, (c.attrInt('allowzero') ?? 0) !== 0))];
  },
  Flatten: (_n, c) => {
    const s = c.shape(0);
    if (!s) return [tt(c.elem(0) ?? 0, unknownDims(2))];
    const a = (c.attrInt('axis') ?? 1) < 0 ? (c.attrInt('axis') ?? 1) + s.length : (c.attrInt('axis') ?? 1);
    return [tt(c.elem(0) ?? 0, [dimProduct(s.slice(0, a)), dimProduct(s.slice(a))])];
  },
  Concat: (n, c) => {
    const shapes = n.inputs.map((_, i) => c.shape(i));
    const e = n.inputs.map((_, i) => c.elem(i)).find((x) => x) ?? 0;
    const known = shapes.find((s) => s);
    if (!known) return [tt(e)];
    const axis = normAxis(c.attrInt('axis') ?? 0, known.length);
    const out = known.map((): Dim => null);
    let total: Dim = 0;
    for (const s of shapes) {
      total = s ? dimAdd(total, s[axis]) : null;
      if (s) s.forEach((d, i) => i !== axis && (out[i] = unifyDim(out[i], d)));
    }
    out[axis] = total;
    return [tt(e, out)];
  },
  Slice: (_n, c) => {
    const e = c.elem(0) ?? 0;
    const shape = c.shape(0);
    if (!shape) return [tt(e)];
    const v10 = c.opset >= 10;
    const starts = v10 ? c.value(1)?.values : c.attrInts('starts');
    const ends = v10 ? c.value(2)?.values : c.attrInts('ends');
    const n = starts?.length ?? ends?.length ?? (v10 ? lengthOf(c, 1) : undefined);
    const axes = v10 ? (c.has(3) ? c.ints(3) : n === undefined ? undefined : [...Array(n).keys()]) : (c.attrInts('axes') ?? (n === undefined ? undefined : [...Array(n).keys()]));
    const steps = v10 && c.has(4) ? c.ints(4) : axes?.map(() => 1);
    if (!axes) return [tt(e, unknownDims(shape.length))];
    const out = shape.slice();
    axes.forEach((ax, k) => {
      const a = normAxis(ax, shape.length);
      out[a] = starts && ends && steps ? sliceLength(shape[a], starts[k], ends[k], steps[k]) : null;
    });
    return [tt(e, out)];
  },
  Split: (n, c) => {
    const e = c.elem(0) ?? 0;
    const shape = c.shape(0);
    if (!shape) return n.outputs.map(() => tt(e));
    const axis = normAxis(c.attrInt('axis') ?? 0, shape.length);
    const sizes = splitSizes(c, shape[axis], n.outputs.length);
    return n.outputs.map((_, k) => {
      const s = shape.slice();
      s[axis] = sizes[k] ?? null;
      return tt(e, s);
    });
  },
  Squeeze: (_n, c) => {
    const e = c.elem(0) ?? 0;
    const shape = c.shape(0);
    const axes = axesOf(c, 1, 13);
    if (!shape || axes === null) return [tt(e)];
    if (!axes || axes.length === 0) return [tt(e, shape.some((d) => typeof d !== 'number') ? undefined : shape.filter((d) => d !== 1))];
    const drop = new Set(axes.map((a) => normAxis(a, shape.length)));
    return [tt(e, shape.filter((_, i) => !drop.has(i)))];
  },
  Unsqueeze: (_n, c) => {
    const e = c.elem(0) ?? 0;
    const shape = c.shape(0);
    const axes = axesOf(c, 1, 13);
    if (!shape || !axes) return [tt(e)];
    const rank = shape.length + axes.length;
    const ins = new Set(axes.map((a) => normAxis(a, rank)));
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(ins.has(i) ? 1 : shape[j++]);
    return [tt(e, out)];
  },
  Transpose: (_n, c) => {
    const shape = c.shape(0);
    const e = c.elem(0) ?? 0;
    if (!shape) return [tt(e)];
    const perm = c.attrInts('perm') ?? shape.map((_, i) => shape.length - 1 - i);
    return [tt(e, perm.map((p) => shape[p]))];
  },
  Expand: (_n, c) => {
    const target = c.value(1)?.values;
    const len = lengthOf(c, 1);
    const s = target ?? (len === undefined ? undefined : unknownDims(len));
    return [tt(c.elem(0) ?? 0, s && broadcastShapes([c.shape(0), s]))];
  },
  Tile: (_n, c) => {
    const shape = c.shape(0);
    const reps = c.value(1)?.values;
    return [tt(c.elem(0) ?? 0, shape && (reps ? shape.map((d, i) => dimMul(d, reps[i])) : unknownDims(shape.length)))];
  },
  Pad: (_n, c) => {
    const shape = c.shape(0);
    const e = c.elem(0) ?? 0;
    if (!shape) return [tt(e)];
    const pads = c.opset >= 11 ? c.value(1)?.values : (c.attrInts('pads') ?? c.attrInts('paddings'));
    const axes = c.opset >= 18 && c.has(3) ? c.ints(3) : shape.map((_, i) => i);
    if (!pads || !axes) return [tt(e, unknownDims(shape.length))];
    const out = shape.slice();
    axes.forEach((ax, k) => {
      const a = normAxis(ax, shape.length);
      out[a] = dimAdd(dimAdd(shape[a], pads[k]), pads[k + axes.length]);
    });
    return [tt(e, out)];
  },
  Shape: (_n, c) => {
    const s = c.shape(0);
    if (!s) return [tt(DataType.INT64, [null])];
    const clampAxis = (a: number): number => Math.min(Math.max(a < 0 ? a + s.length : a, 0), s.length);
    const start = clampAxis(c.attrInt('start') ?? 0);
    const end = clampAxis(c.attrInt('end') ?? s.length);
    return [tt(DataType.INT64, [Math.max(0, end - start)])];
  },
  Size: () => [tt(DataType.INT64, [])],
  NonZero: (_n, c) => [tt(DataType.INT64, [c.shape(0)?.length ?? null, null])],
  Range: (_n, c) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => c.value(i)?.values[0]);
    let len: Dim = null;
    if (typeof start === 'number' && typeof limit === 'number' && typeof delta === 'number' && delta !== 0)
      len = Math.max(0, Math.ceil((limit - start) / delta));
    else if (delta === 1 && start !== undefined && limit !== undefined) len = dimSub(limit ?? null, start ?? null);
    return [tt(c.elem(0) ?? 0, [len])];
  },
  ConstantOfShape: (_n, c) => {
    const e = c.attrTensor('value')?.dtype ?? DataType.FLOAT;
    const v = c.value(0)?.values;
    const len = lengthOf(c, 0);
    return [tt(e, v ?? (len === undefined ? undefined : unknownDims(len)))];
  },
  Constant: (_n, c) => [constantType(c)],
  Cast: (_n, c) => [tt(c.attrInt('to') ?? 0, c.shape(0)?.slice())],
  CastLike: (_n, c) => [tt(c.elem(1) ?? 0, c.shape(0)?.slice())],
  Gather: (_n, c) => {
    const data = c.shape(0);
    const idx = c.shape(1);
    const e = c.elem(0) ?? 0;
    if (!data || !idx) return [tt(e)];
    const a = normAxis(c.attrInt('axis') ?? 0, data.length);
    return [tt(e, [...data.slice(0, a), ...idx, ...data.slice(a + 1)])];
  },
  GatherElements: (_n, c) => [tt(c.elem(0) ?? 0, c.shape(1)?.slice())],
  GatherND: (_n, c) => {
    const data = c.shape(0);
    const idx = c.shape(1);
    const e = c.elem(0) ?? 0;
    const b = c.attrInt('batch_dims') ?? 0;
    const k = idx?.[idx.length - 1];
    if (!data || !idx || typeof k !== 'number') return [tt(e)];
    return [tt(e, [...idx.slice(0, -1), ...data.slice(b + k)])];
  },
  OneHot: (_n, c) => {
    const idx = c.shape(0);
    const e = c.elem(2) ?? 0;
    if (!idx) return [tt(e)];
    const depth = c.value(1)?.values[0] ?? null;
    const a = normAxis(c.attrInt('axis') ?? -1, idx.length + 1);
    return [tt(e, [...idx.slice(0, a), depth, ...idx.slice(a)])];
  },
};
