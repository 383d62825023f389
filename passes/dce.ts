/**
 * dce — dead-code elimination: remove nodes none of whose outputs is read (by a live node,
 * directly or from inside its subgraphs) or is a graph output, and initializers nothing reads
 * that are not graph inputs or outputs. Subgraphs are cleaned first, so outer values that only
 * dead inner nodes read become dead too.
 */
import { commit } from '../src/ir/commit.js';
import type { Graph, Model, Node, Value } from '../src/ir/graph.js';
import { nodeDependencies } from '../src/ir/toposort.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { graphsOf } from '../src/rewrite/rule.js';

/** The dead-code elimination pass; counts `nodes` and `initializers` removed. */
export const dce: Pass = {
  name: 'dce',
  run(model: Model): PassResult {
    const counts = { nodes: 0, initializers: 0 };
    // Top-level graphs only: dceGraph recurses into subgraphs itself (inner first).
    for (const g of graphsOf(model, { subgraphs: false })) dceGraph(g, counts);
    return { modified: counts.nodes + counts.initializers > 0, counts: nonZero(counts) };
  },
};

function dceGraph(g: Graph, counts: { nodes: number; initializers: number }): void {
  for (const n of g.nodes) for (const sg of n.subgraphs()) dceGraph(sg, counts);
  const live = new Set<Value>(g.outputs);
  const dead: Node[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (n.outputs.some((o) => live.has(o))) for (const v of nodeDependencies(n)) live.add(v);
    else dead.push(n);
  }
  if (dead.length) {
    commit(g, { remove: dead });
    counts.nodes += dead.length;
  }
  const unused = g.initializers.filter((v) => !live.has(v) && !v.isGraphInput() && !v.isGraphOutput());
  if (unused.length) {
    const drop = new Set(unused);
    g.initializers = g.initializers.filter((v) => !drop.has(v));
    counts.initializers += unused.length;
  }
}

/** Counts without zero entries (a pass that changed nothing reports `{}`). */
export function nonZero(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
}
