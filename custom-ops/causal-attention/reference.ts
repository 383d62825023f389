/**
 * Float64 reference of CausalAttention and its gradient (math in schema.ts and grad-schema.ts), on
 * row-major arrays: q, o, do [B, Hq, T, D], k, v [B, Hkv, T, D], lse [B, Hq, T]. Computed the
 * textbook way (full softmax over the allowed keys), not the way the kernels do it.
 */

import { roundToFloat16 } from '../../src/onnx/half.js';
import type { AttnDims } from './schema.js';

/** Softmax row t of head (bi, h): probabilities over keys 0..t and their log-sum-exp. */
function row(q: ArrayLike<number>, k: ArrayLike<number>, s: AttnDims, bi: number, h: number, t: number): { p: Float64Array; lse: number } {
  const { hq, hkv, t: T, d: D, scale } = s;
  const kh = Math.floor(h / (hq / hkv));
  const qo = ((bi * hq + h) * T + t) * D;
  const sc = new Float64Array(t + 1);
  let mx = -Infinity;
  for (let u = 0; u <= t; u++) {
    const ko = ((bi * hkv + kh) * T + u) * D;
    let acc = 0;
    for (let e = 0; e < D; e++) acc += q[qo + e] * k[ko + e];
    sc[u] = acc * scale;
    mx = Math.max(mx, sc[u]);
  }
  let sum = 0;
  for (let u = 0; u <= t; u++) sum += Math.exp(sc[u] - mx);
  const lse = mx + Math.log(sum);
  return { p: sc.map((x) => Math.exp(x - lse)), lse };
}

export function causalAttentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnDims): { o: Float64Array; lse: Float64Array } {
  const { b, hq, hkv, t: T, d: D } = s;
  const o = new Float64Array(b * hq * T * D), lse = new Float64Array(b * hq * T);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv));
      for (let t = 0; t < T; t++) {
        const r = row(q, k, s, bi, h, t);
        lse[(bi * hq + h) * T + t] = r.lse;
        const oo = ((bi * hq + h) * T + t) * D;
        for (let u = 0; u <= t; u++) {
          const vo = ((bi * hkv + kh) * T + u) * D;
          for (let e = 0; e < D; e++) o[oo + e] += r.p[u] * v[vo + e];
        }
      }
    }
  return { o, lse };
}

export function causalAttentionGradRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dout: ArrayLike<number>, s: AttnDims): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { b, hq, hkv, t: T, d: D, scale } = s;
  const dq = new Float64Array(b * hq * T * D), dk = new Float64Array(b * hkv * T * D), dv = new Float64Array(b * hkv * T * D);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv));
      for (let t = 0; t < T; t++) {
        const { p } = row(q, k, s, bi, h, t);
        const qo = ((bi * hq + h) * T + t) * D;
        // dp[u] = do[t]·v[u]; ds[u] = p[u](dp[u] − Σ_w p[w] dp[w]) (the softmax Jacobian).
        const dp = new Float64Array(t + 1);
        let dot = 0;
        for (let u = 0; u <= t; u++) {
          const vo = ((bi * hkv + kh) * T + u) * D;
          for (let e = 0; e < D; e++) dp[u] += dout[qo + e] * v[vo + e];
          dot += p[u] * dp[u];
        }
        for (let u = 0; u <= t; u++) {
          const ko = ((bi * hkv + kh) * T + u) * D;
          const ds = p[u] * (dp[u] - dot) * scale;
          for (let e = 0; e < D; e++) {
            dq[qo + e] += ds * k[ko + e];
            dk[ko + e] += ds * q[qo + e];
            dv[ko + e] += p[u] * dout[qo + e];
          }
        }
      }
    }
  return { dq, dk, dv };
}

/**
 * Forward and backward at once, product by product (s = scale·q·kᵀ, o = p·v, dp = do·vᵀ,
 * ds = p(dp − δ) with δ = do·o, dq = scale·ds·k, dk = scale·dsᵀ·q, dv = pᵀ·do), every product's
 * operands rounded to IEEE half when `f16` (precision 'f16' as the bodies and kernels do it: ds
 * rounded before its scale).
 */
export function causalAttentionProductsRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dout: ArrayLike<number>, s: AttnDims, f16: boolean) {
  const r = f16 ? (x: number) => roundToFloat16([x])[0] : (x: number) => x;
  const { b, hq, hkv, t: T, d: D, scale } = s;
  const g = hq / hkv;
  const o = new Float64Array(b * hq * T * D), lse = new Float64Array(b * hq * T);
  const dq = new Float64Array(o.length), dk = new Float64Array(b * hkv * T * D), dv = new Float64Array(dk.length);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < hq; h++) {
      const qo = (bi * hq + h) * T * D, ko = (bi * hkv + Math.floor(h / g)) * T * D;
      const dot = (x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number) => {
        let acc = 0;
        for (let e = 0; e < D; e++) acc += r(x[xo + e]) * r(y[yo + e]);
        return acc;
      };
      for (let t = 0; t < T; t++) {
        const sc = Array.from({ length: t + 1 }, (_, u) => scale * dot(q, qo + t * D, k, ko + u * D));
        const mx = Math.max(...sc);
        const l = mx + Math.log(sc.reduce((acc, x) => acc + Math.exp(x - mx), 0));
        lse[(bi * hq + h) * T + t] = l;
        const p = sc.map((x) => Math.exp(x - l));
        const dp = p.map((_, u) => dot(dout, qo + t * D, v, ko + u * D));
        for (let u = 0; u <= t; u++) for (let e = 0; e < D; e++) o[qo + t * D + e] += r(p[u]) * r(v[ko + u * D + e]);
        let delta = 0; // δ = do·o (fp32 in the kernel: not a GEMM operand)
        for (let e = 0; e < D; e++) delta += dout[qo + t * D + e] * o[qo + t * D + e];
        for (let u = 0; u <= t; u++) {
          const ds = p[u] * (dp[u] - delta);
          for (let e = 0; e < D; e++) {
            dq[qo + t * D + e] += scale * r(ds) * r(k[ko + u * D + e]);
            dk[ko + u * D + e] += scale * r(ds) * r(q[qo + t * D + e]);
            dv[ko + u * D + e] += r(p[u]) * r(dout[qo + t * D + e]);
          }
        }
      }
    }
  return { o, lse, dq, dk, dv };
}
