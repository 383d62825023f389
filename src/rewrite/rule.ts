/**
 * Rules and the rule pass. A rule is `{ name, pattern, check, rewrite }`:
 *   - `pattern`: a pattern (src/rewrite/pattern.ts), or a list of alternative patterns;
 *   - `check(match)`: `ok(facts)` or `no(reason, value)` — facts go to `rewrite` as an argument;
 *   - `rewrite(b, match, facts)`: builds the replacement with `b` (a staged GraphBuilder whose
 *     nodes are tagged with the rule name) and returns the values replacing the pattern outputs.
 * `rulePass` applies rules to the main graph, subgraphs and function bodies until nothing
 * changes, committing each rewrite through `commit` (all or nothing). Example:
 *
 *   const x = v('x');
 *   export const fuseSilu = defineRule({
 *     name: 'fuse-silu',
 *     pattern: p.Mul(x, p.Sigmoid(x)),                       // x * sigmoid(x), either order
 *     check: (m) => {
 *       const s = checkShape(m.values.x, ['...', 'D']);
 *       return s.ok ? ok({ d: s.dims.D }) : no(s.reason, s.value);
 *     },
 *     rewrite: (b, m, facts) => b.op.call('SiLU', [m.values.x], {}, { domain: 'ai.ortfuse' })[0],
 *   });
 *   export const fusions = rulePass('fusions', [fuseSilu]);
 *
 * The matched nodes are removed (except shared ones still read elsewhere); Constant nodes
 * matched by `c(...)` stay for dce.
 */
import { fail, OrtfuseError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import { commit } from '../ir/commit.js';
import type { Graph, Model, Node, Value } from '../ir/graph.js';
import { tensorType } from '../ir/types.js';
import { modelGraphs } from '../ir/walk.js';
import { Matcher, STAGE, type Failure, type Match } from './matcher.js';
import { patternOutputs, patternSize, rootOps, type Pattern } from './pattern.js';
import type { Pass, PassContext, PassResult } from './pass.js';

export type CheckResult<F> = { ok: true; facts: F } | { ok: false; reason: string; value?: Value };

export interface Rule<F = unknown> {
  /** The rule name = file name = tag written on created nodes (`fuse-swiglu`). */
  name: string;
  /** One pattern, or alternative patterns tried in order. */
  pattern: Pattern | Pattern[];
  check?: (m: Match) => CheckResult<F>;
  rewrite: (b: GraphBuilder, m: Match, facts: F) => Value | Value[];
}

/** A successful check carrying the facts `rewrite` needs. */
export function ok<F>(facts: F): CheckResult<F> {
  return { ok: true, facts };
}

/** A failed check: the reason and the offending value. */
export function no(reason: string, value?: Value): { ok: false; reason: string; value?: Value } {
  return { ok: false, reason, value };
}

/** Identity helper that infers the facts type: `defineRule({ name, pattern, check, rewrite })`. */
export function defineRule<F>(r: Rule<F>): Rule<F> {
  return r;
}

/** Domains whose model-local functions are our own fused-op bodies: never rewritten. */
const OWN_FUNCTION_DOMAINS = new Set(['ai.ortfuse']);

/**
 * Every graph a rule pass visits: main graph, function bodies (not ours), and their subgraphs
 * (only the top-level ones with `subgraphs: false`).
 */
export function graphsOf(model: Model, opts: { subgraphs?: boolean } = {}): Graph[] {
  return modelGraphs(model, { functions: (f) => !OWN_FUNCTION_DOMAINS.has(f.domain), subgraphs: opts.subgraphs });
}

interface Compiled {
  rule: Rule<any>;
  alts: { pattern: Pattern; matcher: Matcher; ops?: string[] }[];
}

/** A pass applying `rules` until no rule fires; counts are per rule name. */
export function rulePass(name: string, rules: Rule<any>[], opts: { maxSweeps?: number } = {}): Pass {
  return {
    name,
    run(model: Model, ctx: PassContext): PassResult {
      const compiled: Compiled[] = rules.map((rule) => ({
        rule,
        alts: (Array.isArray(rule.pattern) ? rule.pattern : [rule.pattern]).map((pattern) => {
          const ops = rootOps(patternOutputs(pattern)[0]);
          return { pattern, matcher: new Matcher(pattern), ops: ops && [...ops] };
        }),
      }));
      const counts: Record<string, number> = {};
      for (const r of rules) counts[r.name] = 0;
      const maxSweeps = opts.maxSweeps ?? 16;
      for (let sweep = 0; sweep < maxSweeps; sweep++) {
        let fired = 0;
        for (const g of graphsOf(model)) fired += sweepGraph(g, compiled, counts);
        if (!fired) break;
      }
      if (ctx.explain) explain(compiled, counts, ctx);
      const modified = Object.values(counts).some((n) => n > 0);
      for (const k of Object.keys(counts)) if (!counts[k]) delete counts[k];
      return { modified, counts };
    },
  };
}

function sweepGraph(g: Graph, compiled: Compiled[], counts: Record<string, number>): number {
  const byOp = new Map<string, Node[]>();
  for (const n of g.nodes) {
    const list = byOp.get(n.opType);
    if (list) list.push(n);
    else byOp.set(n.opType, [n]);
  }
  const removed = new Set<Node>();
  let fired = 0;
  for (const { rule, alts } of compiled)
    for (const { matcher, ops } of alts) {
      const candidates = ops ? ops.flatMap((o) => byOp.get(o) ?? []) : g.nodes.slice();
      for (const cand of candidates) {
        if (removed.has(cand)) continue;
        for (const m of matcher.matchAt(cand)) {
          const r: CheckResult<unknown> = rule.check ? rule.check(m) : { ok: true, facts: undefined };
          if (!r.ok) {
            matcher.fail(`check: ${r.reason}${r.value ? ` (value '${r.value.name}')` : ''}`, STAGE.check, r.value);
            continue;
          }
          for (const n of apply(g, rule, m, r.facts)) removed.add(n);
          counts[rule.name]++;
          fired++;
          break;
        }
      }
    }
  return fired;
}

/** Build the rule's replacement and commit it; returns the removed nodes. */
function apply(g: Graph, rule: Rule<any>, m: Match, facts: unknown): Node[] {
  const b = new GraphBuilder(g, { staged: true, tag: rule.name });
  const nInit = g.initializers.length;
  try {
    const r = rule.rewrite(b, m, facts);
    const repl = Array.isArray(r) ? r : [r];
    if (repl.length !== m.outputs.length)
      fail('invalid', `rewrite returned ${repl.length} values for ${m.outputs.length} pattern outputs`);
    if (isFunctionBody(g)) initializersToConstants(g, b, nInit, repl);
    // Remove the matched nodes, except those still read outside the match (shared nodes,
    // and anything they, the new nodes or the replacements read).
    const replaced = new Set(m.outputs);
    const kept = new Set<Value>(repl);
    for (const n of b.nodes) for (const v of n.inputs) if (v) kept.add(v);
    const rm = new Set(m.nodes);
    for (let changed = true; changed; ) {
      changed = false;
      for (const n of rm) {
        const needed = n.outputs.some(
          (o) => kept.has(o) || (!replaced.has(o) && (o.isGraphOutput() || o.uses().some((u) => !rm.has(u.node)))),
        );
        if (needed) {
          rm.delete(n);
          changed = true;
        }
      }
    }
    const pairs = m.outputs.map((o, i): [Value, Value] => [o, repl[i]]).filter(([a, z]) => a !== z);
    commit(g, { remove: [...rm], add: b.nodes, replace: pairs });
    importDomains(g, b.nodes);
    return [...rm];
  } catch (e) {
    g.initializers.length = nInit;
    const msg = e instanceof Error ? e.message : String(e);
    throw new OrtfuseError(e instanceof OrtfuseError ? e.code : 'invalid', `rule ${rule.name} at ${m.root.label}: ${msg}`, { cause: e });
  }
}

function rootGraph(g: Graph): Graph {
  let cur = g;
  while (cur.owner) cur = cur.owner.graph;
  return cur;
}

function isFunctionBody(g: Graph): boolean {
  const r = rootGraph(g);
  return r !== r.model.graph;
}

/** Function bodies cannot hold initializers: turn the ones a rewrite made into Constant nodes. */
function initializersToConstants(g: Graph, b: GraphBuilder, nInit: number, repl: Value[]): void {
  const made = g.initializers.splice(nInit);
  if (!made.length) return;
  const map = new Map<Value, Value>();
  const users = b.nodes.slice();
  for (const v of made) {
    const c = b.op.Constant({ value: v.initializer! });
    c.type = tensorType(v.initializer!.dtype, v.initializer!.dims.slice());
    map.set(v, c);
  }
  for (const n of users) n.inputs = n.inputs.map((x) => (x && map.get(x)) || x);
  repl.forEach((x, i) => (repl[i] = map.get(x) ?? x));
}

/** Add opset imports for custom domains the new nodes use (version 1). */
function importDomains(g: Graph, nodes: Node[]): void {
  const r = rootGraph(g);
  const fn = r.model.functions.find((f) => f.body === r);
  const imports = fn ? fn.opsetImports : r.model.opsetImports;
  for (const n of nodes) {
    const d = n.domain === 'ai.onnx' ? '' : n.domain;
    if (d && !imports.has(d)) imports.set(d, 1);
  }
}

function explain(compiled: Compiled[], counts: Record<string, number>, ctx: PassContext): void {
  for (const { rule, alts } of compiled) {
    if (counts[rule.name]) continue;
    let best: { f: Failure; pattern: Pattern } | undefined;
    for (const a of alts) if (a.matcher.best && (!best || a.matcher.best.score > best.f.score)) best = { f: a.matcher.best, pattern: a.pattern };
    if (best)
      ctx.explanations.push({
        rule: rule.name,
        matched: best.f.matched,
        total: patternSize(best.pattern),
        anchor: best.f.anchor?.name,
        reason: best.f.reason,
      });
    else {
      const ops = [...new Set(alts.flatMap((a) => a.ops ?? []))];
      ctx.explanations.push({
        rule: rule.name,
        matched: 0,
        total: Math.max(...alts.map((a) => patternSize(a.pattern))),
        reason: `no ${ops.join(' or ') || 'candidate'} node in the model`,
      });
    }
  }
}
