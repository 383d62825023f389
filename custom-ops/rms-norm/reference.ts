/**
 * Float64 reference of RMSNorm over the last axis (math in schema.ts; the fp32 casts are exact in
 * float64): y = w · x · rstd, rstd = (mean(x²) + eps)^(−1/2); gradients dx and dweight.
 */

export function rmsNormRef(x: ArrayLike<number>, weight: ArrayLike<number>, d: number, eps: number): { y: Float64Array; rstd: Float64Array } {
  const rowsN = x.length / d;
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rowsN);
  for (let r = 0; r < rowsN; r++) {
    let ms = 0;
    for (let j = 0; j < d; j++) ms += x[r * d + j] ** 2;
    const rs = 1 / Math.sqrt(ms / d + eps);
    rstd[r] = rs;
    for (let j = 0; j < d; j++) y[r * d + j] = weight[j] * x[r * d + j] * rs;
  }
  return { y, rstd };
}

/** dx_k = rstd·(dy_k w_k − x_k · rstd² · mean_j(dy_j w_j x_j)); dweight_j = Σ_rows dy_j x_j rstd. */
export function rmsNormGradRef(x: ArrayLike<number>, weight: ArrayLike<number>, dy: ArrayLike<number>, d: number, eps: number): {
  dx: Float64Array; dWeight: Float64Array;
} {
  const { rstd } = rmsNormRef(x, weight, d, eps);
  const dx = new Float64Array(x.length);
  const dWeight = new Float64Array(d);
  for (let r = 0; r < rstd.length; r++) {
    const rs = rstd[r];
    let dot = 0;
    for (let j = 0; j < d; j++) dot += dy[r * d + j] * weight[j] * x[r * d + j];
    dot /= d;
    for (let j = 0; j < d; j++) {
      const k = r * d + j;
      dx[k] = rs * (dy[k] * weight[j] - x[k] * rs * rs * dot);
      dWeight[j] += dy[k] * x[k] * rs;
    }
  }
  return { dx, dWeight };
}
