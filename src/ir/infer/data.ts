/**
 * Data propagation for small integer tensors, as ONNX's shape inference does: the values of
 * Shape -> Gather/Slice -> Concat/Unsqueeze -> Add/Mul/Div -> Cast ... chains are tracked as dims,
 * so a Reshape/Expand/ConstantOfShape fed by a shape computed at runtime still gets a symbolic
 * output shape.
 */
import type { Node } from '../graph.js';
import type { Dim, TensorType } from '../types.js';
import { broadcastShapes, isIntType, normAxis, type InferContext, type KnownValue } from './context.js';
import { dimAdd, dimDiv, dimEq, dimMul, dimProduct, dimSub } from './dims.js';
import { sliceLength } from './slice.js';

/** Largest tensor (elements) whose values are tracked. */
export const MAX_TRACKED = 64;

type Propagate = (n: Node, c: InferContext, out: TensorType | undefined) => KnownValue | undefined;

const num = (d: Dim): d is number => typeof d === 'number';

/** A concrete output shape small enough to track, from the inferred output type. */
function concreteShape(t: TensorType | undefined): number[] | undefined {
  const s = t?.shape;
  if (!s || !s.every(num)) return undefined;
  return dimProduct(s) as number <= MAX_TRACKED ? (s as number[]) : undefined;
}

/** Same values, new shape (Reshape, Squeeze, Unsqueeze, Flatten, Identity, Cast). */
const view: Propagate = (_n, c, out) => {
  const v = c.value(0);
  const shape = concreteShape(out);
  return v && shape && dimProduct(shape) === v.values.length ? { shape, values: v.values } : undefined;
};

/** Elementwise on values broadcast between same-size and single-element operands. */
function elementwise(f: (xs: Dim[]) => Dim, arity?: number): Propagate {
  return (n, c, out) => {
    const k = arity ?? n.inputs.length;
    const vs = Array.from({ length: k }, (_, i) => c.value(i));
    if (vs.some((v) => !v)) return undefined;
    const shape = broadcastShapes(vs.map((v) => v!.shape)) as number[];
    const size = dimProduct(shape) as number;
    if (vs.some((v) => v!.values.length !== size && v!.values.length !== 1)) return undefined;
    const values = Array.from({ length: size }, (_, j) => f(vs.map((v) => v!.values[v!.values.length === 1 ? 0 : j])));
    return out?.shape && out.shape.length !== shape.length ? undefined : { shape, values };
  };
}

const numeric = (f: (a: number, b: number) => number) => ([a, b]: Dim[]): Dim => (num(a) && num(b) ? f(a, b) : null);

/** Integer division truncates; float division of dims is exact or unknown. */
function divide(int: boolean) {
  return ([a, b]: Dim[]): Dim => {
    if (num(a) && num(b)) return b === 0 ? null : int ? Math.trunc(a / b) : a / b;
    return dimDiv(a, b);
  };
}

/** Equality of dims; a dim is never negative, so `S == -1` is false. */
function equal([a, b]: Dim[]): Dim {
  if (num(a) && num(b)) return a === b ? 1 : 0;
  if (dimEq(a, b)) return 1;
  if ((num(a) && a < 0 && b !== null) || (num(b) && b < 0 && a !== null)) return 0;
  return null;
}

function extreme(pick: (a: number, b: number) => number) {
  return (xs: Dim[]): Dim => xs.reduce((a, b) => (num(a) && num(b) ? pick(a, b) : dimEq(a, b) ? a : null));
}

/** Integer Mod (fmod=0): the result takes the divisor's sign, as in Python. */
const intMod = elementwise(numeric((a, b) => (b === 0 ? NaN : ((a % b) + b) % b)), 2);

const PROPAGATE: Record<string, Propagate> = {
  Shape: (_n, c) => {
    const s = c.shape(0);
    if (!s) return undefined;
    const clampAxis = (a: number): number => Math.min(Math.max(a < 0 ? a + s.length : a, 0), s.length);
    const values = s.slice(clampAxis(c.attrInt('start') ?? 0), clampAxis(c.attrInt('end') ?? s.length));
    return { shape: [values.length], values };
  },
  Size: (_n, c) => {
    const s = c.shape(0);
    return s ? { shape: [], values: [dimProduct(s)] } : undefined;
  },
  Cast: (n, c, out) => {
    const v = view(n, c, out);
    return v && isIntType(out?.elemType) ? { shape: v.shape, values: v.values.map((d) => (num(d) ? Math.trunc(d) : d)) } : v;
  },
  Identity: view, CastLike: view, Reshape: view, Squeeze: view, Unsqueeze: view, Flatten: view,
  Gather: (_n, c) => {
    const data = c.value(0);
    const idx = c.ints(1);
    const idxShape = c.value(1)?.shape;
    if (!data || data.shape.length !== 1 || !idx || !idxShape) return undefined;
    normAxis(c.attrInt('axis') ?? 0, 1);
    const n = data.values.length;
    return { shape: idxShape, values: idx.map((i) => data.values[i < 0 ? i + n : i] ?? null) };
  },
  Slice: (_n, c) => {
    const data = c.value(0);
    const [starts, ends] = [c.ints(1), c.ints(2)];
    const steps = c.has(4) ? c.ints(4) : [1];
    if (!data || data.shape.length !== 1 || !starts || !ends || !steps || starts.length !== 1) return undefined;
    if (c.has(3) && normAxis(c.ints(3)?.[0] ?? 1, 1) !== 0) return undefined;
    const n = data.values.length;
    const len = sliceLength(n, starts[0], ends[0], steps[0]) as number;
    let s = starts[0] < 0 ? starts[0] + n : starts[0];
    s = steps[0] > 0 ? Math.min(Math.max(s, 0), n) : Math.min(Math.max(s, 0), n - 1);
    return { shape: [len], values: Array.from({ length: len }, (_, k) => data.values[s + k * steps[0]]) };
  },
  Concat: (n, c) => {
    const vs = n.inputs.map((_, i) => c.value(i));
    if (vs.some((v) => !v || v.shape.length !== 1)) return undefined;
    const values = vs.flatMap((v) => v!.values);
    return { shape: [values.length], values };
  },
  Add: elementwise(([a, b]) => dimAdd(a, b), 2),
  Sub: elementwise(([a, b]) => dimSub(a, b), 2),
  Mul: elementwise(([a, b]) => dimMul(a, b), 2),
  Div: (n, c, out) => elementwise(divide(isIntType(out?.elemType)), 2)(n, c, out),
  Mod: (n, c, out) => (isIntType(out?.elemType) && !c.attrInt('fmod') ? intMod(n, c, out) : undefined),
  Neg: elementwise(([a]) => dimSub(0, a), 1),
  Abs: elementwise(([a]) => (num(a) ? Math.abs(a) : a), 1),
  Max: elementwise(extreme(Math.max)),
  Min: elementwise(extreme(Math.min)),
  Equal: elementwise(equal, 2),
  Not: elementwise(([a]) => (num(a) ? (a ? 0 : 1) : null), 1),
  Where: elementwise(([cond, x, y]) => (num(cond) ? (cond ? x : y) : dimEq(x, y) ? x : null), 3),
  Range: (_n, c) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => c.value(i)?.values[0]);
    if (!num(start ?? null) || !num(limit ?? null) || !num(delta ?? null) || delta === 0) return undefined;
    const len = Math.max(0, Math.ceil(((limit as number) - (start as number)) / (delta as number)));
    if (len > MAX_TRACKED) return undefined;
    return { shape: [len], values: Array.from({ length: len }, (_, k) => (start as number) + k * (delta as number)) };
  },
  ConstantOfShape: (_n, c, out) => {
    const shape = concreteShape(out);
    const t = c.attrTensor('value');
    let fill = 0;
    if (t) {
      try {
        fill = t.toNumbers()[0] ?? 0;
      } catch {
        return undefined;
      }
    }
    return shape ? { shape, values: new Array(dimProduct(shape) as number).fill(fill) } : undefined;
  },
};

/** The known value of a node's first output, if its op is propagated and its inputs are known. */
export function propagateValue(n: Node, c: InferContext, out: TensorType | undefined): KnownValue | undefined {
  const f = n.domain === '' || n.domain === 'ai.onnx' ? PROPAGATE[n.opType] : undefined;
  const v = f?.(n, c, out);
  if (!v || v.values.length > MAX_TRACKED || v.values.some((x) => typeof x === 'number' && !Number.isFinite(x))) return undefined;
  return v;
}
