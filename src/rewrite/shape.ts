/** Symbolic shape checks for rule `check`s: one helper, `checkShape`. */
import type { Value } from '../ir/graph.js';
import { formatShape, type Dim } from '../ir/types.js';

/**
 * One entry of a shape spec: a number (that exact size), a letter/name that binds the dim
 * (`'D'`: the same name must be the same dim: an equal size or the same symbolic name), null
 * (any dim), or `'...'` (any number of leading/middle dims, at most once).
 */
export type DimSpec = number | string | null;

export type ShapeCheck =
  | { ok: true; dims: Record<string, Dim> }
  | { ok: false; reason: string; value: Value };

/**
 * Check `value`'s static or symbolic shape against `spec`, e.g. `checkShape(x, ['B', 'S', 'D'])`
 * or `checkShape(w, ['...', 'D'], bound)`. Names bind consistently within one check and with
 * `bound` (results of an earlier check). An unknown dim (null) can only match null or a fresh name.
 */
export function checkShape(value: Value, spec: DimSpec[], bound: Record<string, Dim> = {}): ShapeCheck {
  const shape = value.tensorType?.shape;
  const no = (why: string): ShapeCheck => ({ ok: false, reason: `'${value.name}' ${formatShape(shape)}: ${why}`, value });
  if (!shape) return no('rank unknown');
  const ell = spec.indexOf('...');
  if (ell >= 0 && spec.indexOf('...', ell + 1) >= 0) return no(`spec [${spec}] has more than one '...'`);
  const fixed = ell >= 0 ? spec.length - 1 : spec.length;
  if (ell < 0 ? shape.length !== fixed : shape.length < fixed) return no(`expected rank ${ell < 0 ? fixed : `>= ${fixed}`}`);
  const dims: Record<string, Dim> = { ...bound };
  const unknown = new Set<string>();
  const pairs: [DimSpec, Dim, number][] = [];
  if (ell < 0) spec.forEach((s, i) => pairs.push([s, shape[i], i]));
  else {
    spec.slice(0, ell).forEach((s, i) => pairs.push([s, shape[i], i]));
    const tail = spec.slice(ell + 1);
    tail.forEach((s, k) => pairs.push([s, shape[shape.length - tail.length + k], shape.length - tail.length + k]));
  }
  for (const [s, d, i] of pairs) {
    if (s === null) continue;
    if (typeof s === 'number') {
      if (d !== s) return no(`dim ${i} is ${d ?? '?'}, expected ${s}`);
      continue;
    }
    if (!(s in dims)) {
      dims[s] = d;
      if (d === null) unknown.add(s);
      continue;
    }
    const prev = dims[s];
    if (prev === null || d === null || prev !== d)
      return no(`dim ${i} is ${d ?? '?'}, expected ${s} = ${prev ?? '?'}${unknown.has(s) || prev === null || d === null ? ' (unknown dims cannot be proven equal)' : ''}`);
  }
  return { ok: true, dims };
}
