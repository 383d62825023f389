/**
 * The one commit function for structural edits: remove some nodes, add staged nodes (made by a
 * GraphBuilder with `staged: true`) and redirect the uses of old values to new ones. It checks
 * the whole edit first and either applies all of it or changes nothing. Replaced values hand
 * their name (and, when the new value has none, their type) to the new value, so graph outputs
 * and downstream readers keep their names.
 */
import { fail } from '../errors.js';
import type { Graph, Node, Value } from './graph.js';
import { isSorted, toposort } from './toposort.js';

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
  const members = new Set(g.nodes);
  for (const n of remove) if (!members.has(n)) fail('invalid', `commit: ${n.label} is not in graph '${g.name}'`);
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
    if (to.producer && !addSet.has(to.producer) && !members.has(to.producer) && to.graph === g)
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
  let where = g.nodes.length;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (remove.has(g.nodes[i])) { where = i + 1; break; }
  const kept = [...g.nodes.slice(0, where).filter((n) => !remove.has(n)), ...add, ...g.nodes.slice(where).filter((n) => !remove.has(n))];
  g.nodes = kept;
  for (const n of remove) for (const o of n.outputs) o.producer = undefined;
  if (!isSorted(g)) toposort(g);
}
