/**
 * Slice arithmetic on possibly symbolic dims. Concrete dims follow the ONNX clamping rules
 * exactly; symbolic dims assume the bounds are in range (`x[:, 1:]` on `S` is `S-1`, `x[:, :-1]` is
 * `S-1`, `x[:n]` with a symbolic `n` is `n`), which is what exported models rely on; `x[0:5]` on a
 * symbolic dim stays unknown (it is `min(S, 5)`).
 */
import type { Dim } from '../types.js';
import { dimAdd, dimSub } from './dims.js';

/** Ends at or beyond this mean "to the end" (torch writes INT64_MAX, others INT32_MAX). */
const TO_END = 2 ** 31 - 1;

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
  // x[a:b] with concrete a, b >= 0 on a symbolic dim is min(dim, b) - a: unknown.
  if (typeof start === 'number' && typeof end === 'number' && start >= 0 && end >= 0 && end < TO_END) return null;
  return dimSub(e, s);
}

/** A slice bound relative to a (symbolic) dim: negative counts from the end, huge means the end. */
function resolve(dim: Dim, bound: Dim, which: 0 | 1): Dim {
  if (typeof bound !== 'number') return bound;
  if (bound >= TO_END) return which === 1 ? dim : null;
  if (bound <= -TO_END) return which === 0 ? 0 : null;
  if (bound < 0) return dim === null ? null : dimAdd(dim, bound);
  return bound;
}
