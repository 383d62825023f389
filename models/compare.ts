/**
 * Node-by-node structural comparison of two graphs (a builder graph and a real export): same op
 * sequence, attributes and wiring. Values are identified by what they are, not by their names:
 * graph inputs by name, parameters (initializers named by module path, `model.*` / `lm_head.*`)
 * by name, other initializers (the exporter's constants: `val_12`, `expand_2`, ...) by dtype,
 * shape and values, node outputs by (node position, output index).
 */
import type { Attr, Model, Node, Value } from '../src/ir/graph.js';

/** Initializer names that are module parameters. */
const PARAM = /^(model|lm_head)\./;

function attrText(a: Attr): string {
  const v = a.value;
  switch (a.type) {
    case 'STRING': return new TextDecoder().decode(v as Uint8Array);
    case 'INTS': case 'FLOATS': return `[${(v as unknown[]).map(String).join(',')}]`;
    case 'TENSOR': return `tensor${JSON.stringify(v?.dims)}`;
    case 'GRAPH': case 'GRAPHS': return 'graph';
    default: return String(v);
  }
}

/** One line per node: `Op(attrs)(inputs)`. */
export function nodeSignatures(model: Model): string[] {
  const ids = new Map<Value, string>();
  const g = model.graph;
  for (const v of g.inputs) ids.set(v, `input:${v.name}`);
  for (const v of g.initializers) {
    const t = v.initializer!;
    ids.set(v, !PARAM.test(v.name) ? `const:${t.dtype}[${t.dims}]=${Array.from(t.toArray() as ArrayLike<unknown>, String).join(',')}` : `init:${v.name}`);
  }
  const sig = (n: Node, i: number): string => {
    n.outputs.forEach((o, k) => ids.set(o, `%${i}.${k}`));
    const attrs = [...n.attributes.values()].sort((a, b) => a.name.localeCompare(b.name)).map((a) => `${a.name}=${attrText(a)}`);
    const inputs = n.inputs.map((v) => (v ? ids.get(v) ?? `outer:${v.name}` : ''));
    return `${n.qualifiedOp}(${attrs.join(' ')})(${inputs.join(', ')})`;
  };
  return g.nodes.map(sig);
}

/** The first difference between two graphs' node signatures, or undefined when they agree. */
export function firstStructuralDifference(a: Model, b: Model): string | undefined {
  const sa = nodeSignatures(a);
  const sb = nodeSignatures(b);
  for (let i = 0; i < Math.max(sa.length, sb.length); i++)
    if (sa[i] !== sb[i]) return `node ${i}:\n  a: ${sa[i] ?? '<none>'}\n  b: ${sb[i] ?? '<none>'}`;
  const io = (m: Model) => JSON.stringify([m.graph.inputs, m.graph.outputs].map((vs) => vs.map((v) => [v.name, v.type])));
  if (io(a) !== io(b)) return `graph inputs/outputs differ:\n  a: ${io(a)}\n  b: ${io(b)}`;
  return undefined;
}
