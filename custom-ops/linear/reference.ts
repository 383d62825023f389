/**
 * Float64 reference of Linear and LinearGrad (math in schema.ts and grad-schema.ts) on row-major
 * arrays: x [M, K], w [N, K] (transB) or [K, N], bias [N] or undefined, dy [M, N]. With
 * precision 'f16' the GEMM operands are rounded to IEEE half first (products exact in float64).
 */
import { roundToFloat16 } from '../../src/onnx/half.js';
import type { Precision } from '../precision.js';

export interface LinearShape {
  m: number;
  k: number;
  n: number;
  transB: boolean;
  precision?: Precision;
}

const operand = (v: ArrayLike<number>, p?: Precision): ArrayLike<number> => (p === 'f16' ? roundToFloat16(v) : v);

/** w[j, t] as an [N, K] element, whatever the layout. */
const wAt = (w: ArrayLike<number>, s: LinearShape) => (j: number, t: number) => (s.transB ? w[j * s.k + t] : w[t * s.n + j]);

export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | undefined, s: LinearShape): Float64Array {
  const { m, k, n } = s;
  const xr = operand(x, s.precision), at = wAt(operand(w, s.precision), s);
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let acc = bias ? bias[j] : 0;
      for (let t = 0; t < k; t++) acc += xr[i * k + t] * at(j, t);
      y[i * n + j] = acc;
    }
  return y;
}

export interface LinearGrads {
  /** [M, K] */
  dx: Float64Array;
  /** w's layout: [N, K] (transB) or [K, N]. */
  dw: Float64Array;
  /** [N] */
  db: Float64Array;
}

export function linearGradRef(x: ArrayLike<number>, w: ArrayLike<number>, dy: ArrayLike<number>, s: LinearShape): LinearGrads {
  const { m, k, n } = s;
  const xr = operand(x, s.precision), dyr = operand(dy, s.precision), at = wAt(operand(w, s.precision), s);
  const dx = new Float64Array(m * k), dw = new Float64Array(n * k), db = new Float64Array(n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      const d = dyr[i * n + j];
      db[j] += dy[i * n + j];
      for (let t = 0; t < k; t++) {
        dx[i * k + t] += d * at(j, t);
        dw[s.transB ? j * k + t : t * n + j] += d * xr[i * k + t];
      }
    }
  return { dx, dw, db };
}
