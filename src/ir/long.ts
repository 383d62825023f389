/** Conversions of protobufjs int64 values (Long objects, numbers or strings). */
import Long from 'long';

export function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (v && typeof v === 'object' && 'low' in v) return BigInt((v as Long).toString());
  return BigInt(String(v ?? 0));
}

export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'low' in v) return (v as Long).toNumber();
  return Number(v ?? 0);
}

/** An int64 value in the form protobufjs encodes. */
export function toLong(v: bigint | number): Long {
  return Long.fromString(BigInt(v).toString());
}
