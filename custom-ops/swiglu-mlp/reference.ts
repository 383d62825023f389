/**
 * Float64 reference of SwiGLUMLP and its gradient (math in schema.ts and grad-schema.ts; also
 * SwiGLUMLPKeep's and SwiGLUMLPKeepGrad's, the same math), on
 * row-major arrays: x [M, H], w_gate and w_up [I, H], w_down [H, I], dy [M, H]. `{ f16: true }`
 * models precision 'f16': every GEMM operand rounded through float32 to float16 (products and sums
 * still float64).
 */
import { roundToFloat16 } from '../../src/onnx/half.js';

/** Options of the references: `f16` rounds every GEMM operand to float16 (precision 'f16'). */
export interface MlpRefOptions {
  f16?: boolean;
}

const rounder = (o: MlpRefOptions) => (o.f16 ? roundToFloat16 : (v: ArrayLike<number>) => v);

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** a [m, k] · bᵀ with b [n, k]: [m, n]. */
function nt(a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += a[i * k + t] * b[j * k + t];
      c[i * n + j] = s;
    }
  return c;
}

/** aᵀ · b with a [r, m], b [r, n]: [m, n]. */
function tn(a: ArrayLike<number>, b: ArrayLike<number>, r: number, m: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let t = 0; t < r; t++)
    for (let i = 0; i < m; i++) {
      const av = a[t * m + i];
      for (let j = 0; j < n; j++) c[i * n + j] += av * b[t * n + j];
    }
  return c;
}

/** a [m, k] · b with b [k, n]: [m, n]. */
function nn(a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let t = 0; t < k; t++) {
      const av = a[i * k + t];
      for (let j = 0; j < n; j++) c[i * n + j] += av * b[t * n + j];
    }
  return c;
}

export interface MlpShape {
  m: number;
  h: number;
  i: number;
}

/** The gate and up projections g = x·W_gateᵀ and u = x·W_upᵀ [M, I] (SwiGLUMLPKeep's outputs 1 and 2). */
export function swigluMlpProjectionsRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, { m, h, i }: MlpShape, o: MlpRefOptions = {}): { g: Float64Array; u: Float64Array } {
  const r = rounder(o);
  return { g: nt(r(x), r(wGate), m, i, h), u: nt(r(x), r(wUp), m, i, h) };
}

export function swigluMlpRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, wDown: ArrayLike<number>, s: MlpShape, o: MlpRefOptions = {}): Float64Array {
  const r = rounder(o);
  const { g, u } = swigluMlpProjectionsRef(x, wGate, wUp, s, o);
  const act = g.map((v, k) => v * sigmoid(v) * u[k]);
  return nt(r(act), r(wDown), s.m, s.h, s.i);
}

export interface MlpGrads {
  dx: Float64Array;
  dwGate: Float64Array;
  dwUp: Float64Array;
  dwDown: Float64Array;
}

export function swigluMlpGradRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, wDown: ArrayLike<number>, dy: ArrayLike<number>, s: MlpShape, o: MlpRefOptions = {}): MlpGrads {
  const { m, h, i } = s;
  const r = rounder(o);
  const { g, u } = swigluMlpProjectionsRef(x, wGate, wUp, s, o);
  const dh = nn(r(dy), r(wDown), m, i, h);
  const act = new Float64Array(m * i), dg = new Float64Array(m * i), du = new Float64Array(m * i);
  for (let k = 0; k < m * i; k++) {
    const s = sigmoid(g[k]);
    act[k] = g[k] * s * u[k];
    dg[k] = dh[k] * u[k] * s * (1 + g[k] * (1 - s));
    du[k] = dh[k] * g[k] * s;
  }
  const [dgr, dur, xr] = [r(dg), r(du), r(x)];
  const dx = nn(dgr, r(wGate), m, h, i);
  const dxUp = nn(dur, r(wUp), m, h, i);
  for (let k = 0; k < dx.length; k++) dx[k] += dxUp[k];
  return { dx, dwGate: tn(dgr, xr, m, i, h), dwUp: tn(dur, xr, m, i, h), dwDown: tn(r(dy), r(act), m, h, i) };
}
