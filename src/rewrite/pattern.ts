/**
 * The pattern DSL. Patterns are written with the same op builder front end as models
 * (`makeOps`), driven by a sink that creates pattern nodes instead of IR nodes:
 *
 *   const x = v('x');
 *   const silu = p.Mul(x, p.Sigmoid(x));               // Mul(x, Sigmoid(x)), either operand order
 *   const mean = p.ReduceMean(p.Pow(x, c(2)), { axes: [-1] });
 *   const xf = opt(p.Cast(x, { to: DataType.FLOAT })); // Cast(x) or x itself
 *   const act = or([p.Relu(x), p.Gelu(x)]);            // alternatives
 *
 * A variable used twice must match the same value. Commutative ops (Add, Mul, ...) match their
 * operands in any order. Non-root nodes of a match must have no readers outside the match
 * unless wrapped in `shared(...)`.
 */
import { makeOps, type CallOptions, type Ops } from '../ir/builder.js';
import type { Node } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';

/** An attribute value as plain JS: INT → number, INTS → number[], STRING → string, others raw. */
export type AttrJs = number | number[] | string | string[] | Tensor | unknown;

/**
 * An attribute constraint: a value the attribute must equal (numbers compare numerically, so
 * `{ axes: [-1] }` matches INTS [-1]), or a predicate receiving the attribute's plain JS value
 * (undefined when absent) and the node, e.g. `{ keepdims: (k) => (k ?? 1) === 1 }`.
 */
export type AttrConstraint = number | string | number[] | string[] | ((value: AttrJs | undefined, node: Node) => boolean);

export type PatternAttrs = Record<string, AttrConstraint | undefined>;

/** Any pattern value. */
export abstract class PValue {
  abstract readonly kind: string;
}

/** A pattern variable: matches any value; the same name must match the same value. */
export class PVar extends PValue {
  readonly kind = 'var';
  constructor(readonly name: string | undefined) {
    super();
  }
}

/** A pattern node (one op); its outputs are `POut`s. */
export class PNode {
  /** Readers outside the match are allowed for this node's outputs (see `shared`). */
  shared = false;
  readonly outputs: POut[] = [];
  constructor(
    readonly op: string,
    readonly domain: string,
    readonly inputs: (PValue | null)[],
    readonly attrs: PatternAttrs,
    nOutputs: number,
  ) {
    for (let i = 0; i < nOutputs; i++) this.outputs.push(new POut(this, i));
  }

  get label(): string {
    return this.domain ? `${this.domain}::${this.op}` : this.op;
  }
}

/** Output `index` of a pattern node. */
export class POut extends PValue {
  readonly kind = 'out';
  constructor(readonly node: PNode, readonly index: number) {
    super();
  }
}

/** Alternatives, tried in order. */
export class POr extends PValue {
  readonly kind = 'or';
  constructor(readonly alts: PValue[]) {
    super();
  }
}

/** An optional node: matches the node, or (failing that) its first input directly. */
export class POpt extends PValue {
  readonly kind = 'opt';
  constructor(readonly inner: POut) {
    super();
  }
}

/** A constant (initializer that is not a graph input, or Constant node) satisfying a test. */
export class PConst extends PValue {
  readonly kind = 'const';
  constructor(readonly test: (t: Tensor) => boolean, readonly describe: string) {
    super();
  }
}

/** Captures what `inner` matched under `name` (consistently, like a variable). */
export class PNamed extends PValue {
  readonly kind = 'named';
  constructor(readonly name: string, readonly inner: PValue) {
    super();
  }
}

/** The sink behind `p`: creates pattern nodes. */
class PatternSink {
  isValue(x: unknown): x is PValue {
    return x instanceof PValue;
  }

  emit(opType: string, inputs: (PValue | null)[], attrs: PatternAttrs, opts: CallOptions): PValue[] {
    const domain = opts.domain === 'ai.onnx' ? '' : opts.domain ?? '';
    return new PNode(opType, domain, inputs, attrs, opts.outputs ?? 1).outputs;
  }
}

/** The pattern op builder: `p.Mul(x, p.Sigmoid(x))`, `p.call('RMSNorm', [x, w], {}, { domain })`. */
export const p: Ops<PValue, PatternAttrs> = makeOps<PValue, PatternAttrs>(new PatternSink());

/**
 * A pattern variable; `v()` is an anonymous wildcard that also matches an absent optional input
 * (`p.Slice(x, v(), v(), v(), v())` matches Slice with or without axes/steps). Pattern inputs
 * beyond the ones written must be absent on the node; `null` requires an absent input.
 */
export function v(name?: string): PVar {
  return new PVar(name);
}

/** Alternatives, tried in order. */
export function or(alts: PValue[]): POr {
  return new POr(alts);
}

/** An optional node: `opt(p.Cast(x))` matches Cast(x) or x. */
export function opt(node: PValue): POpt {
  if (!(node instanceof POut)) throw new Error('opt() takes a pattern node, e.g. opt(p.Cast(x))');
  return new POpt(node);
}

/** Allow the outputs of this pattern node to have readers outside the match (the node is kept then). */
export function shared<T extends PValue>(pv: T): T {
  if (pv instanceof POut) pv.node.shared = true;
  else if (pv instanceof POpt) pv.inner.node.shared = true;
  return pv;
}

/** Capture the value matched by `pv` as `match.values[name]`. */
export function named(name: string, pv: PValue): PNamed {
  return new PNamed(name, pv);
}

/**
 * A constant value. `c(2)`: every element equals 2 (scalar or one-element tensors, any numeric
 * type); `c([0, 1])`: exactly these values; `c((t) => ...)`: a test on the tensor; `c()`: any constant.
 */
export function c(want?: number | number[] | ((t: Tensor) => boolean)): PConst {
  if (want === undefined) return new PConst(() => true, 'a constant');
  if (typeof want === 'function') return new PConst(want, 'a constant satisfying the rule');
  if (Array.isArray(want))
    return new PConst((t) => {
      if (t.size !== want.length || t.size > 4096) return false;
      const vals = t.toNumbers();
      return vals.every((x, i) => x === want[i]);
    }, `constant [${want.join(', ')}]`);
  return new PConst((t) => t.size === 1 && t.toNumbers()[0] === want, `scalar constant ${want}`);
}

/** A complete pattern: one value, or several outputs (`outputs(a, b)`), the first one anchoring the search. */
export type Pattern = PValue | PatternOutputs;

export class PatternOutputs {
  constructor(readonly values: PValue[]) {}
}

/** A pattern with several outputs; each gets a replacement from the rule's `rewrite`. */
export function outputs(...values: PValue[]): PatternOutputs {
  return new PatternOutputs(values);
}

/** The pattern's outputs as a list. */
export function patternOutputs(pat: Pattern): PValue[] {
  return pat instanceof PatternOutputs ? pat.values : [pat];
}

/** Ops whose operands the matcher tries in any order. */
export const COMMUTATIVE = new Set([
  'Add', 'Mul', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'And', 'Or', 'Xor',
  'BitwiseAnd', 'BitwiseOr', 'BitwiseXor',
]);

/** Op types a value pattern can be rooted at (undefined: any node). */
export function rootOps(pv: PValue): Set<string> | undefined {
  if (pv instanceof POut) return new Set([pv.node.op]);
  if (pv instanceof PNamed) return rootOps(pv.inner);
  if (pv instanceof POr || pv instanceof POpt) {
    const parts = pv instanceof POr ? pv.alts : [pv.inner, pv.inner.node.inputs[0] ?? new PVar(undefined)];
    const out = new Set<string>();
    for (const a of parts) {
      const s = rootOps(a);
      if (!s) return undefined;
      for (const o of s) out.add(o);
    }
    return out;
  }
  return undefined;
}

/** Number of pattern nodes on the largest path through alternatives (for "matched k of n"). */
export function patternSize(pat: Pattern): number {
  const seen = new Set<PNode>();
  const size = (pv: PValue | null): number => {
    if (!pv) return 0;
    if (pv instanceof POut) {
      if (seen.has(pv.node)) return 0;
      seen.add(pv.node);
      return 1 + pv.node.inputs.reduce((s, i) => s + size(i), 0);
    }
    if (pv instanceof PNamed) return size(pv.inner);
    if (pv instanceof POpt) return size(pv.inner);
    if (pv instanceof POr) return Math.max(0, ...pv.alts.map(size));
    return 0;
  };
  return patternOutputs(pat).reduce((s, o) => s + size(o), 0);
}
