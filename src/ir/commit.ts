/**
 * The one commit function for structural edits: remove some nodes, add staged nodes (made by a
 * GraphBuilder with `staged: true`) and redirect the uses of old values to new ones. It checks
 * the whole edit first and either applies all of it or changes nothing. Replaced values hand
 * their name (and, when the new value has none, their type) to the new value, so graph outputs
 * and downstream readers keep their names.
 */
import { fail } from '../errors.js';
import type { Graph, Node, Value } from './graph.js';
import { nodeDependencies, toposort } from './toposort.js';

export interface Edit {
  /** Nodes to delete. Their outputs must be unused after the edit, or replaced. */
  remove?: Node[];
  /** Staged nodes to insert (inputs may be existing values or outputs of other added nodes). */
  add?: Node[];
  /** [old, new] pairs: every use of `old` (and graph-output slot) moves to `new`. */
  replace?: [Value, Value][];
}

export function commit(g: Graph, edit: Edit): void {
  const remove = new Set(edit.remove ?? []);
  const add = edit.add ?? [];
  const replace = new Map(edit.replace ?? []);
  // indexOf scans are cheaper than building a Set of all nodes on every commit.
  let where = -1;
  for (const n of remove) {
    const i = g.nodes.indexOf(n);
    if (i < 0) fail('invalid', `commit: ${n.label} is not in graph '${g.name}'`);
    if (i > where) where = i;
  }
  const addSet = new Set(add);
  const removedOutputs = new Set<Value>();
  for (const n of remove) for (const o of n.outputs) removedOutputs.add(o);
  for (const n of add) {
    if (n.graph !== g) fail('invalid', `commit: ${n.label} was built for another graph`);
    for (const v of n.inputs)
      if (v && removedOutputs.has(v) && !replace.has(v))
        fail('invalid', `commit: added ${n.label} reads '${v.name}', which the edit removes`);
  }
  for (const [from, to] of replace) {
    if (from === to) fail('invalid', `commit: value '${from.name}' replaced by itself`);
    if (removedOutputs.has(to)) fail('invalid', `commit: replacement '${to.name}' is removed by the edit`);
    if (to.producer && !addSet.has(to.producer) && to.graph === g && !g.nodes.includes(to.producer))
      fail('invalid', `commit: replacement '${to.name}' is produced by a node outside the graph`);
  }
  for (const [from, to] of replace)
    if (from.isGraphOutput() && !(to.producer && addSet.has(to.producer)) && (to.isGraphInput() || to.initializer || to.isGraphOutput()))
      fail('invalid', `commit: graph output '${from.name}' cannot be replaced by '${to.name}', which is itself a graph input, initializer or output`);
  for (const o of removedOutputs) {
    if (replace.has(o)) continue;
    if (o.isGraphOutput()) fail('invalid', `commit: '${o.name}' is a graph output and is removed without replacement`);
    for (const u of o.uses())
      if (!remove.has(u.node)) fail('invalid', `commit: '${o.name}' is removed but still read by ${u.node.label}`);
  }
  // Apply.
  // Existing readers move first, so an added node may read a value it replaces (x -> Cast(x)).
  for (const [from, to] of replace) {
    const wasOutput = from.isGraphOutput();
    g.replaceAllUses(from, to);
    if (!to.type && from.type) to.type = from.type;
    const fresh = to.producer !== undefined && addSet.has(to.producer);
    if (from.name && (fresh || wasOutput)) {
      const name = from.name;
      from.name = g.model.freshName(`${name}_old`);
      to.name = name;
    }
  }
  for (const n of add) {
    const inputs = n.inputs;
    n.inputs = [];
    inputs.forEach((v, i) => n.setInput(i, v && replace.has(v) && removedOutputs.has(v) ? replace.get(v)! : v));
  }
  for (const n of remove) n.detachInputs();
  // Added nodes go where the last removed node was (after the pattern's inputs, before its
  // readers); a final check re-sorts in the rare case that is not a valid order.
  const at = where < 0 ? g.nodes.length : where + 1;
  const kept: Node[] = [];
  for (let i = 0; i < g.nodes.length; i++) {
    if (i === at) kept.push(...add);
    if (!remove.has(g.nodes[i])) kept.push(g.nodes[i]);
  }
  if (at === g.nodes.length) kept.push(...add);
  g.nodes = kept;
  for (const n of remove) for (const o of n.outputs) o.producer = undefined;
  if (!sortedAround(g, add, [...replace.values()])) toposort(g);
}

/**
 * The graph was sorted before the edit; only the added nodes and the readers of replacement
 * values can be out of order. Checking just those keeps a commit O(nodes) with a small constant.
 */
function sortedAround(g: Graph, add: Node[], targets: Value[]): boolean {
  const here = (n: Node | undefined): number | undefined => {
    for (let c = n; c; c = c.graph.owner) if (c.graph === g) return g.nodes.indexOf(c);
    return undefined;
  };
  const after = (v: Value, i: number): boolean => v.uses().every((u) => (here(u.node) ?? Infinity) > i);
  for (const n of add) {
    const i = g.nodes.indexOf(n);
    for (const v of nodeDependencies(n)) if ((here(v.producer) ?? -1) >= i) return false;
    for (const o of n.outputs) if (!after(o, i)) return false;
  }
  for (const t of targets) {
    const i = here(t.producer);
    if (i !== undefined && !after(t, i)) return false;
  }
  return true;
}
