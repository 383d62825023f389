/** Topological order of a graph's nodes (stable: keeps the existing order where it is valid). */
import { fail } from '../errors.js';
import type { Graph, Node, Value } from './graph.js';

/** Values a node reads, including those read inside its subgraphs from enclosing scopes. */
export function nodeDependencies(n: Node): Value[] {
  const deps = n.inputs.filter((v): v is Value => v !== null);
  for (const g of n.subgraphs()) deps.push(...g.outerReferences());
  return deps;
}

/**
 * Sort `g.nodes` in place so every node follows the producers of its inputs. Throws an
 * 'invalid' error naming a node on the cycle if there is one.
 */
export function toposort(g: Graph): void {
  const index = new Map<Node, number>();
  g.nodes.forEach((n, i) => index.set(n, i));
  const state = new Map<Node, 1 | 2>(); // 1 = on stack, 2 = done
  const order: Node[] = [];
  for (const root of g.nodes) {
    if (state.get(root) === 2) continue;
    const stack: [Node, Value[], number][] = [[root, nodeDependencies(root), 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [n, deps] = top;
      if (top[2] < deps.length) {
        const p = producerIn(g, deps[top[2]++], index);
        if (!p) continue;
        const s = state.get(p);
        if (s === 1) fail('invalid', `graph '${g.name}' has a cycle through ${p.label} and ${n.label}`);
        if (s === 2) continue;
        state.set(p, 1);
        stack.push([p, nodeDependencies(p), 0]);
      } else {
        state.set(n, 2);
        order.push(n);
        stack.pop();
      }
    }
  }
  g.nodes = order;
}

/** The node of `g` (directly in g, or owning the subgraph holding the producer) producing v. */
function producerIn(g: Graph, v: Value, index: Map<Node, number>): Node | undefined {
  for (let p = v.producer; p; p = p.graph.owner) if (index.has(p)) return p;
  return undefined;
}

/** True if the nodes are already in topological order. */
export function isSorted(g: Graph): boolean {
  const seen = new Set<Node>();
  const index = new Map<Node, number>();
  g.nodes.forEach((n, i) => index.set(n, i));
  for (const n of g.nodes) {
    for (const v of nodeDependencies(n)) {
      const p = producerIn(g, v, index);
      if (p && !seen.has(p)) return false;
    }
    seen.add(n);
  }
  return true;
}
