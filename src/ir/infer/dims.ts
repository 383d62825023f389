/**
 * Symbolic dimension algebra. A symbolic dim is a string holding a polynomial with integer
 * coefficients over dimension symbols, in one canonical form: terms by falling degree, then by
 * name, constant last, factors sorted, no spaces (`B*S`, `2*s`, `seq-1`, `s0*s1+s0`).
 * Exporter names are atoms (`batch`, `s0`, `unk__3`); strings that are not products/sums of
 * identifiers and integers (e.g. `floor(s/2)`, `seq len`) are opaque atoms that only combine by
 * equality. Division is exact or nothing: anything not provable gives `null` (unknown).
 */
import type { Dim } from '../types.js';

/** Monomial key (sorted factors joined by '*', '' for the constant term) -> coefficient. */
type Poly = Map<string, number>;

const IDENT = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const cache = new Map<string, Poly | null>();

/** Parse a dim string into a polynomial; null when it is not one (an opaque atom). */
function parse(s: string): Poly | null {
  const hit = cache.get(s);
  if (hit !== undefined) return hit;
  let p: Poly | null;
  if (IDENT.test(s)) p = new Map([[s, 1]]);
  else {
    try {
      p = new Parser(s).parseAll();
    } catch {
      p = null;
    }
  }
  if (cache.size > 10_000) cache.clear();
  cache.set(s, p);
  return p;
}

class Parser {
  private toks: string[];
  private i = 0;
  constructor(s: string) {
    this.toks = s.match(/\s+|[A-Za-z_][A-Za-z0-9_.]*|\d+|[-+*()]|./g)!.filter((t) => !/^\s+$/.test(t));
  }
  parseAll(): Poly {
    const p = this.sum();
    if (this.i !== this.toks.length) throw new Error('trailing');
    return p;
  }
  private sum(): Poly {
    let sign = 1;
    if (this.toks[this.i] === '-') (sign = -1), this.i++;
    let acc = scale(this.product(), sign);
    while (this.toks[this.i] === '+' || this.toks[this.i] === '-') {
      const s = this.toks[this.i++] === '+' ? 1 : -1;
      acc = addPoly(acc, scale(this.product(), s));
    }
    return acc;
  }
  private product(): Poly {
    let acc = this.factor();
    while (this.toks[this.i] === '*') {
      this.i++;
      acc = mulPoly(acc, this.factor());
    }
    return acc;
  }
  private factor(): Poly {
    const t = this.toks[this.i++];
    if (t === undefined) throw new Error('eof');
    if (t === '(') {
      const p = this.sum();
      if (this.toks[this.i++] !== ')') throw new Error(')');
      return p;
    }
    if (/^\d+$/.test(t)) return constPoly(Number(t));
    if (IDENT.test(t)) return new Map([[t, 1]]);
    throw new Error(`unexpected ${t}`);
  }
}

function constPoly(n: number): Poly {
  return n === 0 ? new Map() : new Map([['', n]]);
}

function scale(p: Poly, k: number): Poly {
  const out: Poly = new Map();
  if (k !== 0) for (const [m, c] of p) out.set(m, c * k);
  return out;
}

function addPoly(a: Poly, b: Poly): Poly {
  const out = new Map(a);
  for (const [m, c] of b) {
    const v = (out.get(m) ?? 0) + c;
    if (v === 0) out.delete(m);
    else out.set(m, v);
  }
  return out;
}

function mulMono(a: string, b: string): string {
  if (!a) return b;
  if (!b) return a;
  return [...a.split('*'), ...b.split('*')].sort().join('*');
}

function mulPoly(a: Poly, b: Poly): Poly {
  let out: Poly = new Map();
  for (const [ma, ca] of a) for (const [mb, cb] of b) out = addPoly(out, new Map([[mulMono(ma, mb), ca * cb]]));
  return out;
}

/** Divide monomial `a` by `b` exactly (undefined if some factor of b is missing from a). */
function divMono(a: string, b: string): string | undefined {
  if (!b) return a;
  const rest = a ? a.split('*') : [];
  for (const f of b.split('*')) {
    const i = rest.indexOf(f);
    if (i < 0) return undefined;
    rest.splice(i, 1);
  }
  return rest.join('*');
}

/** Exact division of a polynomial by a single-term polynomial; undefined when not exact. */
function divPoly(a: Poly, b: Poly): Poly | undefined {
  if (b.size !== 1) {
    // Equal polynomials divide to 1 (e.g. (s+1)/(s+1)).
    return formatPoly(a) === formatPoly(b) ? constPoly(1) : undefined;
  }
  const [[mb, cb]] = [...b];
  const out: Poly = new Map();
  for (const [ma, ca] of a) {
    const m = divMono(ma, mb);
    if (m === undefined || ca % cb !== 0) return undefined;
    out.set(m, ca / cb);
  }
  return out;
}

function degree(m: string): number {
  return m ? m.split('*').length : 0;
}

function formatPoly(p: Poly): Dim {
  if (p.size === 0) return 0;
  if (p.size === 1 && p.has('')) return p.get('')!;
  const terms = [...p].sort(([a], [b]) => (degree(b) - degree(a)) || (a < b ? -1 : a > b ? 1 : 0));
  let s = '';
  for (const [m, c] of terms) {
    const abs = Math.abs(c);
    const body = !m ? String(abs) : abs === 1 ? m : `${abs}*${m}`;
    s += c < 0 ? `-${body}` : s ? `+${body}` : body;
  }
  return s;
}

function toPoly(d: Dim): Poly | null {
  if (d === null) return null;
  if (typeof d === 'number') return constPoly(d);
  return parse(d);
}

/** The canonical form of a dim (`'S * B'` -> `'B*S'`, `'3'` -> 3); opaque atoms unchanged. */
export function canonDim(d: Dim): Dim {
  if (typeof d !== 'string') return d;
  const p = parse(d);
  return p ? formatPoly(p) : d;
}

/** True when two dims are provably equal (same number, or the same polynomial). */
export function dimEq(a: Dim, b: Dim): boolean {
  if (a === null || b === null) return false;
  if (a === b) return true;
  return canonDim(a) === canonDim(b);
}

function binary(a: Dim, b: Dim, f: (x: Poly, y: Poly) => Poly | undefined): Dim {
  const pa = toPoly(a);
  const pb = toPoly(b);
  if (!pa || !pb) return null;
  const r = f(pa, pb);
  return r ? formatPoly(r) : null;
}

/** a + b. */
export function dimAdd(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return binary(a, b, addPoly);
}

/** a - b. */
export function dimSub(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (b === 0) return a;
  return binary(a, b, (x, y) => addPoly(x, scale(y, -1)));
}

/** a * b. */
export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 0 || b === 0) return 0;
  if (a === 1) return b;
  if (b === 1) return a;
  return binary(a, b, mulPoly);
}

/** a / b when it divides exactly (`B*S*896 / 896` = `B*S`); null otherwise. */
export function dimDiv(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : null;
  if (b === 1) return a;
  if (b === 0) return null;
  return binary(a, b, divPoly);
}

/** Product of dims (1 for an empty list). */
export function dimProduct(dims: readonly Dim[]): Dim {
  let acc: Dim = 1;
  for (const d of dims) acc = dimMul(acc, d);
  return acc;
}

/** Evaluate a dim with symbols bound to numbers; null if a symbol is unbound or the dim is opaque. */
export function evalDim(d: Dim, bindings: Record<string, number>): number | null {
  if (typeof d === 'number') return d;
  if (d === null) return null;
  if (d in bindings) return bindings[d];
  const p = parse(d);
  if (!p) return null;
  let total = 0;
  for (const [m, c] of p) {
    let v = c;
    for (const f of m ? m.split('*') : []) {
      if (!(f in bindings)) return null;
      v *= bindings[f];
    }
    total += v;
  }
  return total;
}
