/**
 * Float64 reference of FusedLinearCrossEntropy (math in schema.ts): forward and the gradients
 * d hidden, d weight, d bias, in plain TS. Row-major: hidden [N, H], weight [V, H], bias [V].
 * `f16` models precision 'f16': GEMM operands rounded through float32 to float16 (hidden and
 * weight for the logits and both gradient GEMMs, and the unscaled logit gradient
 * softmax − ε/V − (1 − ε)·onehot), products and sums in float64, the row factor applied after.
 */
import { roundToFloat16 } from '../../src/onnx/half.js';
import type { Reduction } from './schema.js';

export interface LinearCEInputs {
  n: number;
  h: number;
  v: number;
  hidden: ArrayLike<number>;
  weight: ArrayLike<number>;
  bias?: ArrayLike<number>;
  labels: ArrayLike<number | bigint>;
}

export interface LinearCEOptions {
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
  /** Round GEMM operands to float16 (precision 'f16'; see the header). */
  f16?: boolean;
}

interface RowStats {
  /** Logits of the row. */
  z: Float64Array;
  lse: number;
}

function rowLogits(x: LinearCEInputs, i: number): RowStats {
  const { h, v, hidden, weight, bias } = x;
  const z = new Float64Array(v);
  let max = -Infinity;
  for (let c = 0; c < v; c++) {
    let s = bias ? bias[c] : 0;
    for (let k = 0; k < h; k++) s += hidden[i * h + k] * weight[c * h + k];
    z[c] = s;
    if (s > max) max = s;
  }
  let sum = 0;
  for (let c = 0; c < v; c++) sum += Math.exp(z[c] - max);
  return { z, lse: max + Math.log(sum) };
}

const opt = (o: LinearCEOptions) => ({ ignoreIndex: o.ignoreIndex ?? -100, reduction: o.reduction ?? 'mean', eps: o.labelSmoothing ?? 0 });

/** The inputs with hidden and weight rounded to float16 when `o.f16`. */
const operands = (x: LinearCEInputs, o: LinearCEOptions): LinearCEInputs =>
  (o.f16 ? { ...x, hidden: roundToFloat16(x.hidden), weight: roundToFloat16(x.weight) } : x);

/** Per-row losses, the count of non-ignored rows, and the reduced loss ([1] or [N]). */
export function linearCrossEntropyRef(x0: LinearCEInputs, o: LinearCEOptions = {}): { loss: Float64Array; rows: Float64Array; count: number } {
  const { ignoreIndex, reduction, eps } = opt(o);
  const x = operands(x0, o);
  const rows = new Float64Array(x.n);
  let count = 0;
  for (let i = 0; i < x.n; i++) {
    const y = Number(x.labels[i]);
    if (y === ignoreIndex) continue;
    count++;
    const { z, lse } = rowLogits(x, i);
    let mean = 0;
    for (let c = 0; c < x.v; c++) mean += z[c];
    mean /= x.v;
    rows[i] = lse - (1 - eps) * z[y] - eps * mean;
  }
  const sum = rows.reduce((a, b) => a + b, 0);
  const loss = reduction === 'none' ? rows.slice() : Float64Array.of(reduction === 'sum' ? sum : sum / count);
  return { loss, rows, count };
}

/**
 * Gradients of the loss times `gradOutput` (a scalar for 'mean'/'sum', [N] for 'none'):
 * dz_ic = g_i · (softmax(z_i)_c − (1 − ε)·[c = y_i] − ε / V), zero on ignored rows, with
 * g_i = gradOutput / count ('mean'), gradOutput ('sum') or gradOutput[i] ('none');
 * d hidden = dz · W, d weight = dzᵀ · hidden, d bias = Σ_i dz_i.
 */
export function linearCrossEntropyGradRef(x0: LinearCEInputs, o: LinearCEOptions, gradOutput: number | ArrayLike<number>): {
  dHidden: Float64Array; dWeight: Float64Array; dBias: Float64Array;
} {
  const { ignoreIndex, reduction, eps } = opt(o);
  const x = operands(x0, o);
  const { n, h, v, hidden, weight } = x;
  const count = Array.from(x.labels, (y) => Number(y) !== ignoreIndex).filter(Boolean).length;
  const dHidden = new Float64Array(n * h);
  const dWeight = new Float64Array(v * h);
  const dBias = new Float64Array(v);
  for (let i = 0; i < n; i++) {
    const y = Number(x.labels[i]);
    if (y === ignoreIndex) continue;
    const g = typeof gradOutput === 'number' ? (reduction === 'mean' ? gradOutput / count : gradOutput) : gradOutput[i];
    const { z, lse } = rowLogits(x, i);
    const q = z.map((zc, c) => Math.exp(zc - lse) - (c === y ? 1 - eps : 0) - eps / v);
    const qg = o.f16 ? roundToFloat16(q) : q;
    for (let c = 0; c < v; c++) {
      dBias[c] += g * q[c];
      const dz = g * qg[c];
      for (let k = 0; k < h; k++) {
        dHidden[i * h + k] += dz * weight[c * h + k];
        dWeight[c * h + k] += dz * hidden[i * h + k];
      }
    }
  }
  return { dHidden, dWeight, dBias };
}
