/**
 * In-forward gradients: a gradient rule may swap its forward node for one that also outputs the
 * gradients of its inputs (Liger-Kernel's linear-CE computes grad_input and grad_W inside the
 * forward chunk loop; the backward only scales them). The swap keeps the node's position, name,
 * inputs, attributes and output values, so the rest of the graph does not notice.
 */
import type { Node } from '../ir/graph.js';
import type { ValueType } from '../ir/types.js';

/** The tag (`ortfuse.rule`) of nodes the autodiff creates, forward swaps included. */
export const AUTODIFF_TAG = 'autodiff';

/** Metadata key marking a forward node swapped in by {@link replaceForwardNode} (it runs in the forward pass). */
export const IN_FORWARD_KEY = 'ortfuse.in_forward';

/**
 * Replace `node` by `domain::opType` with the same inputs and attributes, the same output values
 * first, then one new value per entry of `extra` (named `<node>/<name>`, typed as given).
 */
export function replaceForwardNode(node: Node, opType: string, domain: string, extra: { name: string; type?: ValueType }[]): Node {
  const g = node.graph;
  const at = g.nodes.indexOf(node);
  const inputs = node.inputs.slice();
  const outputs = node.outputs.slice();
  node.detachInputs();
  for (const o of outputs) o.producer = undefined;
  node.outputs = [];
  g.nodes.splice(at, 1);
  const base = node.name || opType;
  const values = extra.map((e) => g.createValue(`${base}/${e.name}`, e.type));
  const n = g.addNode(opType, inputs, [...outputs, ...values], {
    domain, name: node.name || undefined, attrs: [...node.attributes.values()], before: g.nodes[at],
  });
  n.extra = { ...node.extra, metadata_props: [{ key: 'ortfuse.rule', value: AUTODIFF_TAG }, { key: IN_FORWARD_KEY, value: '1' }] };
  return n;
}
