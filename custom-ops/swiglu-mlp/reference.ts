/**
 * Float64 reference of SwiGLUMLP and its gradient (math in schema.ts and grad-schema.ts; also
 * SwiGLUMLPKeep's and SwiGLUMLPKeepGrad's, the same math), on
 * row-major arrays: x [M, H], w_gate and w_up [I, H], w_down [H, I], dy [M, H].
 */

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
export function swigluMlpProjectionsRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, { m, h, i }: MlpShape): { g: Float64Array; u: Float64Array } {
  return { g: nt(x, wGate, m, i, h), u: nt(x, wUp, m, i, h) };
}

export function swigluMlpRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, wDown: ArrayLike<number>, { m, h, i }: MlpShape): Float64Array {
  const g = nt(x, wGate, m, i, h);
  const u = nt(x, wUp, m, i, h);
  const act = g.map((v, k) => v * sigmoid(v) * u[k]);
  return nt(act, wDown, m, h, i);
}

export interface MlpGrads {
  dx: Float64Array;
  dwGate: Float64Array;
  dwUp: Float64Array;
  dwDown: Float64Array;
}

export function swigluMlpGradRef(x: ArrayLike<number>, wGate: ArrayLike<number>, wUp: ArrayLike<number>, wDown: ArrayLike<number>, dy: ArrayLike<number>, { m, h, i }: MlpShape): MlpGrads {
  const g = nt(x, wGate, m, i, h);
  const u = nt(x, wUp, m, i, h);
  const dh = nn(dy, wDown, m, i, h);
  const act = new Float64Array(m * i), dg = new Float64Array(m * i), du = new Float64Array(m * i);
  for (let k = 0; k < m * i; k++) {
    const s = sigmoid(g[k]);
    act[k] = g[k] * s * u[k];
    dg[k] = dh[k] * u[k] * s * (1 + g[k] * (1 - s));
    du[k] = dh[k] * g[k] * s;
  }
  const dx = nn(dg, wGate, m, h, i);
  const dxUp = nn(du, wUp, m, h, i);
  for (let k = 0; k < dx.length; k++) dx[k] += dxUp[k];
  return { dx, dwGate: tn(dg, x, m, i, h), dwUp: tn(du, x, m, i, h), dwDown: tn(dy, act, m, h, i) };
}
