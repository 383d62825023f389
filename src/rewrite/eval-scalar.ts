/**
 * The element semantics of constant folding (./eval.ts): which element types it folds, integer
 * wrap-around as the C++ kernels do it, the binary arithmetic, comparison and logic ops, and
 * static_cast conversions. Anything not exact throws Skip (`skip()`): the evaluator then leaves the
 * node to the runtime.
 */
import { DataType } from '../onnx/schema.js';

export type Scalar = number | bigint;
export type Data = Scalar[];

export const INT_BITS: Record<number, [number, boolean]> = {
  [DataType.INT8]: [8, true], [DataType.INT16]: [16, true], [DataType.INT32]: [32, true], [DataType.INT64]: [64, true],
  [DataType.UINT8]: [8, false], [DataType.UINT16]: [16, false], [DataType.UINT32]: [32, false], [DataType.UINT64]: [64, false],
};
export const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE]);
export const isBig = (t: number): boolean => t === DataType.INT64 || t === DataType.UINT64;

/** Element types folding supports (float16/bfloat16 and strings are left alone). */
export function foldableType(t: number): boolean {
  return t in INT_BITS || FLOATS.has(t) || t === DataType.BOOL;
}

export class Skip extends Error {}
export const skip = (): never => {
  throw new Skip();
};

/** Wrap an exact integer result to the type's width, as a C++ kernel would. */
export function wrap(dtype: number, v: bigint): Scalar {
  const [bits, signed] = INT_BITS[dtype];
  const w = signed ? BigInt.asIntN(bits, v) : BigInt.asUintN(bits, v);
  return isBig(dtype) ? w : Number(w);
}

export function arith(op: string, dtype: number, a: Scalar, b: Scalar): Scalar {
  if (FLOATS.has(dtype)) {
    const x = Number(a), y = Number(b);
    switch (op) {
      case 'Add': return x + y;
      case 'Sub': return x - y;
      case 'Mul': return x * y;
      default: return x / y;
    }
  }
  if (!(dtype in INT_BITS)) skip();
  const x = BigInt(a), y = BigInt(b);
  switch (op) {
    case 'Add': return wrap(dtype, x + y);
    case 'Sub': return wrap(dtype, x - y);
    case 'Mul': return wrap(dtype, x * y);
    default: return y === 0n ? skip() : wrap(dtype, x / y); // C++ integer division truncates
  }
}

export function compare(op: string, a: Scalar, b: Scalar): number {
  switch (op) {
    case 'Equal': return a === b ? 1 : 0;
    case 'Less': return a < b ? 1 : 0;
    case 'LessOrEqual': return a <= b ? 1 : 0;
    case 'GreaterOrEqual': return a >= b ? 1 : 0;
    default: return a > b ? 1 : 0;
  }
}

export function logical(op: string, a: Scalar, b: Scalar): number {
  const x = Number(a) !== 0, y = Number(b) !== 0;
  return (op === 'And' ? x && y : op === 'Or' ? x || y : x !== y) ? 1 : 0;
}

/** static_cast semantics for the conversions folding accepts. */
export function castTo(to: number, from: number, v: Scalar): Scalar {
  if (to === DataType.BOOL) return Number(v) !== 0 ? 1 : 0;
  if (FLOATS.has(to)) return Number(v);
  if (!(to in INT_BITS)) skip();
  if (FLOATS.has(from)) {
    const x = Number(v);
    if (!Number.isFinite(x)) skip(); // undefined behaviour in C++: leave it to the runtime
    const tr = BigInt(Math.trunc(x));
    if (wrap(to, tr) !== (isBig(to) ? tr : Number(tr))) skip(); // out of range: same
    return wrap(to, tr);
  }
  return wrap(to, BigInt(v));
}
