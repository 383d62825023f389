/** Combining types: refine a known type with an inferred one, or join the types of two branches. */
import { dataTypeName } from '../../onnx/schema.js';
import type { Dim, TensorType, ValueType } from '../types.js';
import { formatType } from '../types.js';
import { dimEq } from './dims.js';

export interface MergeResult {
  type: ValueType | undefined;
  /** Why `existing` and `inferred` disagree (the existing type is kept). */
  conflict?: string;
}

/**
 * Refine `existing` with `inferred`: fill what is unknown, never lose information. A symbolic dim
 * already present is kept (the exporter's name wins over ours); a concrete dim replaces a
 * symbolic one. Different element types, ranks or concrete sizes are a conflict.
 */
export function mergeType(existing: ValueType | undefined, inferred: ValueType | undefined): MergeResult {
  if (!inferred) return { type: existing };
  if (!existing) return { type: inferred };
  if (existing.kind !== 'tensor' || inferred.kind !== 'tensor') return { type: existing };
  const why = (m: string): MergeResult => ({ type: existing, conflict: `${m}: declared ${formatType(existing)}, inferred ${formatType(inferred)}` });
  if (existing.elemType && inferred.elemType && existing.elemType !== inferred.elemType)
    return why(`element type ${dataTypeName(existing.elemType)} vs ${dataTypeName(inferred.elemType)}`);
  const elemType = existing.elemType || inferred.elemType;
  const [a, b] = [existing.shape, inferred.shape];
  if (!a || !b) {
    const shape = a ?? b;
    return { type: elemType === existing.elemType && shape === a ? existing : { kind: 'tensor', elemType, shape } };
  }
  if (a.length !== b.length) return why(`rank ${a.length} vs ${b.length}`);
  let changed = elemType !== existing.elemType;
  const shape: Dim[] = [];
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i], b[i]];
    if (typeof x === 'number' && typeof y === 'number' && x !== y) return why(`dim ${i} is ${x} vs ${y}`);
    const keep = y === null || typeof x === 'number' || (typeof x === 'string' && typeof y === 'string');
    shape.push(keep ? x : y);
    if (!keep) changed = true;
  }
  return { type: changed ? { kind: 'tensor', elemType, shape } : existing };
}

/** The most precise type true of both `a` and `b` (If branches, loop-carried values). */
export function joinTypes(a: ValueType | undefined, b: ValueType | undefined): ValueType | undefined {
  if (!a || !b) return a ?? b;
  if (a.kind !== 'tensor' || b.kind !== 'tensor') return a;
  const elemType = a.elemType === b.elemType ? a.elemType : a.elemType && b.elemType ? 0 : a.elemType || b.elemType;
  let shape: Dim[] | undefined;
  if (a.shape && b.shape && a.shape.length === b.shape.length) shape = a.shape.map((d, i) => (dimEq(d, b.shape![i]) ? d : null));
  return { kind: 'tensor', elemType, shape } satisfies TensorType;
}

/** True if `t` is a tensor type with an element type and every dim known (number or symbol). */
export function isFullType(t: ValueType | undefined): boolean {
  return t?.kind === 'tensor' && t.elemType !== 0 && t.shape !== undefined && t.shape.every((d) => d !== null);
}
