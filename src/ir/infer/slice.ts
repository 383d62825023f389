/**
 * Slice arithmetic on possibly symbolic dims. Concrete dims follow the ONNX clamping rules
 * exactly. A symbolic dim is assumed to be at least 2, as torch's exporter assumes (it
 * specializes sizes 0 and 1): `x[:, 1:]` on `S` is `S-1`, `x[:, :-1]` is `S-1`, `x[:, 0:1]` is 1;
 * bounds that need more (`x[:5]` = `min(S, 5)`, `x[-3:]`) give null. A symbolic bound on any dim is
 * taken as in range (`cache[:S]` is `S`).
 */
import type { Dim } from '../types.js';
import { dimAdd, dimSub } from './dims.js';

/** Ends at or beyond this mean "to the end" (torch writes INT64_MAX, others INT32_MAX). */
const TO_END = 2 ** 31 - 1;
/** The least value a symbolic dim is assumed to have. */
const MIN_SYMBOLIC = 2;
/** Length of `dim[start:end:step]`, or null when it cannot be known exactly. */
export function sliceLength(dim: Dim, start: Dim, end: Dim, step: number): Dim {
  if (step === 0) throw new Error('Slice step cannot be 0');
  if (typeof dim === 'number' && typeof start === 'number' && typeof end === 'number') {
    const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
    let s = start < 0 ? start + dim : start;
    let e = end < 0 ? end + dim : end;
    if (step > 0) {
      s = clamp(s, 0, dim);
      e = clamp(e, 0, dim);
    } else {
      s = clamp(s, 0, dim - 1);
      e = clamp(e, -1, dim - 1);
    }
    return Math.max(0, Math.ceil((e - s) / step));
  }
  if (step === -1 && typeof start === 'number' && typeof end === 'number' && start === -1 && end <= -TO_END) return dim;
  if (step !== 1) return null;
  const s = resolve(dim, start, 0);
  const e = resolve(dim, end, 1);
  if (s === null || e === null) return null;
  if (typeof s === 'number' && typeof e === 'number') return Math.max(0, e - s);
  return dimSub(e, s);
}

/**
 * A slice bound as an offset (number, or dim expression) valid for every value of a symbolic
 * `dim` >= MIN_SYMBOLIC; null when it would need clamping for some of them.
 */
function resolve(dim: Dim, bound: Dim, which: 0 | 1): Dim {
  if (typeof bound !== 'number') return bound;
  if (bound >= TO_END) return which === 1 ? dim : null;
  if (bound <= -TO_END) return which === 0 ? 0 : null;
  if (typeof dim === 'number') return bound < 0 ? Math.max(0, bound + dim) : Math.min(bound, dim);
  if (dim === null || bound < -MIN_SYMBOLIC || bound > MIN_SYMBOLIC) return null;
  return bound < 0 ? dimAdd(dim, bound) : bound;
}
