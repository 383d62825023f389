/**
 * Half-precision floats (bfloat16, IEEE float16) as 16-bit patterns, to and from float32: widening
 * is exact; narrowing rounds to nearest, ties to even, as torch's `.to(torch.bfloat16)` and
 * `.half()` do (NaN stays NaN, overflow goes to ±Infinity).
 */
import { DataType } from './schema.js';

export type HalfType = typeof DataType.BFLOAT16 | typeof DataType.FLOAT16;

/** float32 values of bfloat16 or float16 bit patterns (exact). */
export function widenHalf(dtype: number, bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === DataType.BFLOAT16) {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
    return out;
  }
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i], sign = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    out[i] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1024 + m) * 2 ** (e - 25);
  }
  return out;
}

/** bfloat16 or float16 bit patterns of float32 values (round to nearest even). */
export function narrowToHalf(dtype: number, values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === DataType.BFLOAT16) {
    for (let i = 0; i < u.length; i++) {
      const x = u[i];
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return out;
  }
  for (let i = 0; i < u.length; i++) {
    const x = u[i], sign = (x >>> 16) & 0x8000, e = (x >>> 23) & 0xff, m = x & 0x7fffff;
    if (e === 0xff) out[i] = sign | 0x7c00 | (m ? 0x200 : 0);
    else if (e > 142) out[i] = sign | 0x7c00; // ≥ 2^16: beyond float16's range
    else if (e >= 113) {
      // normal: 10 mantissa bits, round the 13 dropped ones to nearest even (a carry may reach the exponent)
      const r = ((e - 112) << 10) + (m >>> 13), rest = m & 0x1fff;
      out[i] = sign | (r + (rest > 0x1000 || (rest === 0x1000 && (r & 1)) ? 1 : 0));
    } else if (e >= 102) {
      // subnormal: the implicit bit joins the mantissa, shifted by the missing exponent
      const full = m | 0x800000, shift = 126 - e, r = full >>> shift, rest = full & ((1 << shift) - 1), half = 1 << (shift - 1);
      out[i] = sign | (r + (rest > half || (rest === half && (r & 1)) ? 1 : 0));
    } else out[i] = sign; // below half the smallest subnormal: ±0
  }
  return out;
}

/** `values` through float32 and IEEE float16 and back (round to nearest even, overflow to ±Infinity, subnormals kept), as float64. */
export function roundToFloat16(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(widenHalf(DataType.FLOAT16, narrowToHalf(DataType.FLOAT16, Float32Array.from(values))));
}
