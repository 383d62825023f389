/**
 * The matcher: finds a pattern (src/rewrite/pattern.ts) rooted at a graph node, by backtracking
 * over commuted operands, alternatives and optional nodes. It yields every complete match
 * (lazily) and records the best failed attempt with a readable reason, for `--explain`.
 */
import type { Attr, Graph, Node, Value } from '../ir/graph.js';
import { constantTensor } from './constant.js';
import {
  COMMUTATIVE, PConst, PNamed, PNode, POpt, POr, POut, PVar, patternOutputs,
  type AttrConstraint, type AttrJs, type Pattern, type PValue,
} from './pattern.js';

/** A complete match of a pattern. */
export interface Match {
  graph: Graph;
  /** The node the search was anchored at (producer of the first pattern output). */
  root: Node;
  /** The matched graph nodes (Constant nodes matched by `c(...)` are not included). */
  nodes: Node[];
  /** Captured values by name: pattern variables and `named(...)`. */
  values: Record<string, Value>;
  /** The values matched by the pattern outputs, in order (these get replaced). */
  outputs: Value[];
  /** The nodes of `shared(...)` pattern nodes, which may be read outside the match. */
  shared: Set<Node>;
}

/** The best failed attempt so far. `score` orders attempts: more nodes matched, later stage. */
export interface Failure {
  matched: number;
  score: number;
  reason: string;
  anchor?: Node;
  value?: Value;
}

/** Ordering of failure stages at equal node counts. */
export const STAGE = { structure: 0, outputs: 1, consumers: 2, check: 3 } as const;

export class Matcher {
  best: Failure | undefined;
  private nodes = new Map<PNode, Node>();
  /** Graph nodes already matched (distinct pattern nodes match distinct graph nodes). */
  private taken = new Set<Node>();
  private values = new Map<string, Value>();
  private graph!: Graph;
  private anchor!: Node;
  private readonly outs: PValue[];

  constructor(readonly pattern: Pattern) {
    this.outs = patternOutputs(pattern);
  }

  /** Record a failure (kept if it got further than the best one so far). */
  fail(reason: string, stage = 0, value?: Value): void {
    const matched = this.nodes.size;
    // A mismatch at another op is a nearer miss than one at a graph input or constant.
    const score = matched * 8 + stage * 2 + (value?.producer ? 1 : 0);
    if (!this.best || score > this.best.score) this.best = { matched, score, reason, anchor: this.anchor, value };
  }

  /** All matches anchored at `node` (lazily; stop iterating once one is used). */
  *matchAt(node: Node): Generator<Match> {
    this.graph = node.graph;
    this.anchor = node;
    this.nodes.clear();
    this.taken.clear();
    this.values.clear();
    for (const o of node.outputs) {
      for (const _ of this.rest(o, 0)) {
        if (this.nodes.size === 0) continue; // a bare variable is not a match
        const outputs = this.outs.map((pv) => this.resolve(pv)!);
        if (!this.consumersOk(outputs)) continue;
        const shared = new Set<Node>();
        for (const [pn, n] of this.nodes) if (pn.shared) shared.add(n);
        yield {
          graph: this.graph,
          root: node,
          nodes: [...new Set(this.nodes.values())],
          values: Object.fromEntries(this.values),
          outputs,
          shared,
        };
      }
    }
  }

  /**
   * Match pattern outputs i.. : output 0 at the anchor; a later output that the match so far
   * has not reached is searched among the readers of the values matched so far.
   */
  private *rest(anchorValue: Value, i: number): Generator<void> {
    if (i === this.outs.length) return yield;
    const where = `pattern output ${i}`;
    if (i === 0) {
      for (const _ of this.value(this.outs[0], anchorValue, where)) yield* this.rest(anchorValue, 1);
      return;
    }
    const known = this.resolve(this.outs[i]);
    if (known) {
      for (const _ of this.value(this.outs[i], known, where)) yield* this.rest(anchorValue, i + 1);
      return;
    }
    const seen = new Set<Value>();
    const reached = [...this.values.values()];
    for (const n of this.nodes.values()) reached.push(...n.outputs);
    for (const r of reached)
      for (const u of r.uses()) {
        if (u.node.graph !== this.graph || this.taken.has(u.node)) continue;
        for (const o of u.node.outputs) {
          if (seen.has(o)) continue;
          seen.add(o);
          for (const _ of this.value(this.outs[i], o, where)) yield* this.rest(anchorValue, i + 1);
        }
      }
    if (!seen.size) this.fail(`${where}: not found among the readers of the values matched so far`, STAGE.outputs);
  }

  /** The value a (matched) pattern value stands for. */
  private resolve(pv: PValue): Value | undefined {
    if (pv instanceof POut) return this.nodes.get(pv.node)?.outputs[pv.index];
    if (pv instanceof PVar) return pv.name ? this.values.get(pv.name) : undefined;
    if (pv instanceof PNamed) return this.values.get(pv.name);
    if (pv instanceof POpt) return this.resolve(pv.inner) ?? this.resolve(pv.inner.node.inputs[0] ?? new PVar(undefined));
    if (pv instanceof POr) for (const a of pv.alts) { const r = this.resolve(a); if (r) return r; }
    return undefined;
  }

  /** Every non-shared matched node's outputs are read only inside the match (or replaced). */
  private consumersOk(outputs: Value[]): boolean {
    const inside = new Set(this.nodes.values());
    const replaced = new Set(outputs);
    for (const [pn, n] of this.nodes) {
      if (pn.shared) continue;
      for (const o of n.outputs) {
        if (replaced.has(o)) continue;
        if (o.isGraphOutput()) {
          this.fail(`'${o.name}' (output of ${n.label}) is a graph output`, STAGE.consumers, o);
          return false;
        }
        for (const u of o.uses())
          if (!inside.has(u.node)) {
            this.fail(`'${o.name}' (output of ${n.label}) is also read by ${u.node.label} outside the match`, STAGE.consumers, o);
            return false;
          }
      }
    }
    return true;
  }

  private *value(pv: PValue | null, val: Value | null, where: string): Generator<void> {
    if (pv === null) {
      if (val === null) yield;
      else this.fail(`${where}: expected no input, found '${val.name}'`);
      return;
    }
    if (pv instanceof POut) return yield* this.node(pv, val, where);
    if (pv instanceof PVar) {
      if (!pv.name) return yield; // the anonymous wildcard also matches an absent optional input
      if (!val) return this.fail(`${where}: expected a value, found no input`);
      return yield* this.bind(pv.name, val, where);
    }
    if (pv instanceof PNamed) {
      for (const _ of this.value(pv.inner, val, where)) if (val) yield* this.bind(pv.name, val, where);
      return;
    }
    if (pv instanceof POr) {
      for (const a of pv.alts) yield* this.value(a, val, where);
      return;
    }
    if (pv instanceof POpt) {
      yield* this.node(pv.inner, val, where);
      yield* this.value(pv.inner.node.inputs[0] ?? null, val, where);
      return;
    }
    if (pv instanceof PConst) {
      const t = constantTensor(val);
      if (!t) return this.fail(`${where}: expected ${pv.describe}, found ${describeValue(val)}`, 0, val ?? undefined);
      let ok = false;
      try {
        ok = pv.test(t);
      } catch {
        ok = false;
      }
      if (ok) yield;
      else this.fail(`${where}: expected ${pv.describe}, found a different constant '${val!.name}'`, 0, val!);
      return;
    }
    throw new Error(`unknown pattern value kind ${pv.kind}`);
  }

  private *bind(name: string, val: Value, where: string): Generator<void> {
    const prev = this.values.get(name);
    if (prev) {
      if (prev === val) yield;
      else this.fail(`${where}: '${name}' is already '${prev.name}', found '${val.name}'`, 0, val);
      return;
    }
    this.values.set(name, val);
    yield;
    this.values.delete(name);
  }

  private *node(pv: POut, val: Value | null, where: string): Generator<void> {
    const pn = pv.node;
    const bound = this.nodes.get(pn);
    if (bound) {
      if (val && val.producer === bound && val.producerIndex === pv.index) yield;
      else this.fail(`${where}: expected the ${pn.label} already matched at node '${bound.name}', found ${describeValue(val)}`, 0, val ?? undefined);
      return;
    }
    const n = val?.producer;
    if (!val || !n || n.graph !== this.graph) return this.fail(`${where}: expected ${pn.label}, found ${describeValue(val)}`, 0, val ?? undefined);
    if (this.taken.has(n)) return this.fail(`${where}: ${n.label} is already matched by another pattern node`, 0, val);
    const dom = n.domain === 'ai.onnx' ? '' : n.domain;
    if (n.opType !== pn.op || dom !== pn.domain)
      return this.fail(`${where}: expected ${pn.label}, found ${n.qualifiedOp} at node '${n.name}'`, 0, val);
    if (val.producerIndex !== pv.index)
      return this.fail(`${where}: expected output ${pv.index} of ${pn.label}, found output ${val.producerIndex} of node '${n.name}'`, 0, val);
    for (const [k, want] of Object.entries(pn.attrs)) {
      if (want === undefined) continue;
      const a = n.attributes.get(k);
      if (!attrOk(want, a, n))
        return this.fail(`${where}: ${pn.label} at node '${n.name}': attribute ${k} is ${fmt(attrJs(a))}, expected ${typeof want === 'function' ? 'a value satisfying the rule' : fmt(want)}`, 0, val);
    }
    const nIn = trimmedLength(n.inputs);
    const pIn = trimmedLength(pn.inputs);
    if (nIn > pn.inputs.length)
      return this.fail(`${where}: ${pn.label} at node '${n.name}' has ${nIn} inputs, the pattern expects ${pIn}`, 0, val);
    this.nodes.set(pn, n);
    this.taken.add(n);
    const ins = pn.inputs.map((_, i) => n.inputs[i] ?? null);
    for (const order of orders(pn, ins.length)) yield* this.inputs(pn, ins, order, 0);
    this.nodes.delete(pn);
    this.taken.delete(n);
  }

  private *inputs(pn: PNode, ins: (Value | null)[], order: number[], i: number): Generator<void> {
    if (i === order.length) return yield;
    const j = order[i];
    for (const _ of this.value(pn.inputs[i], ins[j], `${pn.label} input ${j}`)) yield* this.inputs(pn, ins, order, i + 1);
  }
}

/** Input orders to try: identity, plus all permutations for commutative ops (up to 4 operands). */
const ORDERS = new Map<number, number[][]>();

function orders(pn: PNode, n: number): number[][] {
  const id = Array.from({ length: n }, (_, i) => i);
  if (!COMMUTATIVE.has(pn.op) || pn.domain !== '' || n < 2 || n > 4) return [id];
  const cached = ORDERS.get(n);
  if (cached) return cached;
  const out: number[][] = [];
  const perm = (prefix: number[], rest: number[]): void => {
    if (!rest.length) out.push(prefix);
    rest.forEach((r, k) => perm([...prefix, r], [...rest.slice(0, k), ...rest.slice(k + 1)]));
  };
  perm([], id);
  ORDERS.set(n, out);
  return out;
}

function trimmedLength(xs: readonly unknown[]): number {
  let n = xs.length;
  while (n > 0 && (xs[n - 1] === null || xs[n - 1] === undefined)) n--;
  return n;
}

/** An attribute as plain JS (see `AttrJs`). */
export function attrJs(a: Attr | undefined): AttrJs | undefined {
  if (!a || a.refAttrName) return undefined;
  const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
  switch (a.type) {
    case 'INT': return Number(a.value);
    case 'INTS': return (a.value as bigint[]).map(Number);
    case 'STRING': return dec(a.value as Uint8Array);
    case 'STRINGS': return (a.value as Uint8Array[]).map(dec);
    default: return a.value;
  }
}

function attrOk(want: AttrConstraint, a: Attr | undefined, n: Node): boolean {
  const js = attrJs(a);
  if (typeof want === 'function') return want(js, n);
  if (Array.isArray(want)) return Array.isArray(js) && js.length === want.length && want.every((x, i) => x === js[i]);
  return js === want;
}

function fmt(x: unknown): string {
  if (x === undefined) return 'absent';
  if (Array.isArray(x)) return `[${x.join(', ')}]`;
  return typeof x === 'string' ? `'${x}'` : String(x);
}

/** "graph input 'x'", "initializer 'w'", "Tanh at node 'n'", ... for messages. */
export function describeValue(v: Value | null | undefined): string {
  if (!v) return 'no input';
  if (v.isGraphInput()) return `graph input '${v.name}'`;
  if (v.initializer) return `initializer '${v.name}'`;
  const n = v.producer;
  if (!n) return `value '${v.name}'`;
  return `${n.qualifiedOp} at node '${n.name}'`;
}
