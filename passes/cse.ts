/**
 * cse — common subexpression elimination: two nodes with the same op, domain, overload,
 * attributes, output count and (canonical) inputs compute the same values, so the later one is
 * removed and its readers use the earlier one's outputs. Small identical initializers are merged
 * first, so folded shape constants repeated per layer unify; not graph inputs or outputs, nor
 * float initializers of more than one element (possible parameters: equal at init is not tied).
 * Not for nodes with subgraphs, nor non-deterministic ops (Random*, Multinomial, Dropout in
 * training mode), nor a backward recomputation with its forward original.
 */
import { isRecomputeNode } from '../src/autodiff/recompute.js';
import { commit } from '../src/ir/commit.js';
import type { Attr, Graph, Model, Node, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { constantNumbers, isParameterLike } from '../src/rewrite/constant.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { graphsOf } from '../src/rewrite/rule.js';
import { nonZero } from './dce.js';

/** Largest tensor (bytes) hashed for initializer merging and TENSOR attributes. */
const HASH_LIMIT = 4096;

/** The CSE pass; counts merged `nodes` and `initializers`. */
export const cse: Pass = {
  name: 'cse',
  run(model: Model): PassResult {
    const counts = { nodes: 0, initializers: 0 };
    for (const g of graphsOf(model)) {
      counts.initializers += mergeInitializers(g);
      counts.nodes += cseGraph(g);
    }
    return { modified: counts.nodes + counts.initializers > 0, counts: nonZero(counts) };
  },
};

/** Base64 of bytes with the web's btoa (no Buffer: the pass also runs in browsers). */
function base64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return btoa(s);
}

function tensorKey(t: Tensor): string | undefined {
  if (!t.inMemory || t.byteLength > HASH_LIMIT) return undefined;
  return `${t.dtype}[${t.dims}]${base64(t.bytes())}`;
}

function mergeInitializers(g: Graph): number {
  const seen = new Map<string, Value>();
  const replace: [Value, Value][] = [];
  for (const v of g.initializers) {
    if (v.isGraphInput() || v.isGraphOutput() || isParameterLike(v)) continue;
    const key = tensorKey(v.initializer!);
    if (key === undefined) continue;
    const first = seen.get(key);
    if (first) replace.push([v, first]);
    else seen.set(key, v);
  }
  if (!replace.length) return 0;
  commit(g, { replace });
  const drop = new Set(replace.map(([v]) => v));
  g.initializers = g.initializers.filter((v) => !drop.has(v));
  return replace.length;
}

function attrKey(a: Attr): string | undefined {
  if (a.refAttrName) return `@${a.refAttrName}`;
  const num = (x: unknown): string => (Object.is(x, -0) ? '-0' : String(x));
  switch (a.type) {
    case 'INT': case 'FLOAT': return num(a.value);
    case 'INTS': case 'FLOATS': return (a.value as unknown[]).map(num).join(',');
    case 'STRING': return base64(a.value as Uint8Array);
    case 'STRINGS': return (a.value as Uint8Array[]).map(base64).join(',');
    case 'TENSOR': return a.value instanceof Tensor ? tensorKey(a.value) : undefined;
    default: return undefined; // graphs, sparse tensors, type protos: not compared
  }
}

/** Ops whose outputs may differ between two evaluations. */
function nondeterministic(n: Node): boolean {
  if (/Random|Multinomial/.test(n.opType)) return true;
  if (!/Dropout/.test(n.opType)) return false;
  if (n.opType !== 'Dropout' || (n.domain !== '' && n.domain !== 'ai.onnx')) return true;
  const mode = n.inputs[2];
  return mode ? constantNumbers(mode)?.[0] !== 0 : false; // training_mode defaults to false
}

function nodeKey(n: Node, id: (v: Value) => number): string | undefined {
  if (n.subgraphs().length || nondeterministic(n)) return undefined;
  const attrs: string[] = [];
  for (const a of [...n.attributes.values()].sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const k = attrKey(a);
    if (k === undefined) return undefined;
    attrs.push(`${a.name}:${a.type}=${k}`);
  }
  const ins = n.inputs.map((v) => (v ? id(v) : '-')).join(',');
  // A recomputation clone (src/autodiff/recompute.ts) exists to NOT share its forward original's value.
  const phase = isRecomputeNode(n) ? 'recompute' : '';
  return `${phase}|${n.domain}|${n.opType}|${n.overload ?? ''}|${n.outputs.length}|${attrs.join(';')}|${ins}`;
}

function cseGraph(g: Graph): number {
  const ids = new Map<Value, number>();
  const canon = new Map<Value, Value>();
  const id = (v: Value): number => {
    const c = canon.get(v) ?? v;
    let i = ids.get(c);
    if (i === undefined) ids.set(c, (i = ids.size));
    return i;
  };
  const first = new Map<string, Node>();
  const remove: Node[] = [];
  const replace: [Value, Value][] = [];
  const becomesOutput = new Set<Value>();
  for (const n of g.nodes) {
    const key = nodeKey(n, id);
    if (key === undefined) continue;
    const f = first.get(key);
    if (!f) {
      first.set(key, n);
      continue;
    }
    // A graph output can move onto the kept value only if that is not an output already.
    const clash = n.outputs.some((o, i) => o.isGraphOutput() && (f.outputs[i].isGraphOutput() || becomesOutput.has(f.outputs[i])));
    if (clash) continue;
    n.outputs.forEach((o, i) => {
      if (o.isGraphOutput()) becomesOutput.add(f.outputs[i]);
      canon.set(o, f.outputs[i]);
      replace.push([o, f.outputs[i]]);
    });
    remove.push(n);
  }
  if (remove.length) commit(g, { remove, replace });
  return remove.length;
}
