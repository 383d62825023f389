/**
 * Float64 reference of RoPE (rotate-half): y = x·cos + R(x)·sin with R(x) = [−x2, x1];
 * dx = dy·cos + Rᵀ(dy·sin) with Rᵀ(u) = [u2, −u1]. x [B, Hh, S, D]; cos/sin [Bc, 1, S, D], Bc ∈ {1, B}.
 */

export interface RopeShape {
  b: number;
  heads: number;
  s: number;
  d: number;
  /** Batch dim of cos/sin (1 or b). */
  bc: number;
}

function each(sh: RopeShape, f: (xi: number, ci: number, j: number, rowX: number) => void): void {
  const { b, heads, s, d, bc } = sh;
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < heads; hi++)
      for (let si = 0; si < s; si++) {
        const rowX = ((bi * heads + hi) * s + si) * d;
        const rowC = ((bc === 1 ? 0 : bi) * s + si) * d;
        for (let j = 0; j < d; j++) f(rowX + j, rowC + j, j, rowX);
      }
}

export function ropeRef(x: ArrayLike<number>, cos: ArrayLike<number>, sin: ArrayLike<number>, sh: RopeShape): Float64Array {
  const y = new Float64Array(x.length);
  const half = sh.d / 2;
  each(sh, (xi, ci, j, row) => {
    const rot = j < half ? -x[row + j + half] : x[row + j - half];
    y[xi] = x[xi] * cos[ci] + rot * sin[ci];
  });
  return y;
}

export function ropeGradRef(dy: ArrayLike<number>, cos: ArrayLike<number>, sin: ArrayLike<number>, sh: RopeShape): Float64Array {
  const dx = new Float64Array(dy.length);
  const half = sh.d / 2;
  // Rᵀ(u)_j = u_{j+half} for j < half, −u_{j−half} otherwise, with u = dy·sin.
  each(sh, (xi, ci, j, row) => {
    const cPartner = ci - j + (j < half ? j + half : j - half);
    const u = j < half ? dy[row + j + half] * sin[cPartner] : -dy[row + j - half] * sin[cPartner];
    dx[xi] = dy[xi] * cos[ci] + u;
  });
  return dx;
}
