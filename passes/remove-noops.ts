/**
 * remove-noops — remove exact no-ops, pointing their readers at their input: Identity; Cast to
 * the input's own element type (when known); Reshape to the input's own static shape. A graph
 * output keeps its name (commit hands it over); a node is kept where removing it would make a
 * graph input, initializer or outer-scope value a graph output.
 */
import { commit } from '../src/ir/commit.js';
import type { Graph, Model, Node, Value } from '../src/ir/graph.js';
import { constantNumbers } from '../src/rewrite/constant.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { graphsOf } from '../src/rewrite/rule.js';
import { nonZero } from './dce.js';

/** The no-op removal pass; counts removed nodes per op type. */
export const removeNoops: Pass = {
  name: 'remove-noops',
  run(model: Model): PassResult {
    const counts: Record<string, number> = {};
    for (const g of graphsOf(model))
      for (const n of g.nodes.slice()) {
        const x = noopInput(n);
        if (!x || !removable(g, n.outputs[0], x)) continue;
        commit(g, { remove: [n], replace: [[n.outputs[0], x]] });
        counts[n.opType] = (counts[n.opType] ?? 0) + 1;
      }
    return { modified: Object.keys(nonZero(counts)).length > 0, counts: nonZero(counts) };
  },
};

/** The input a node passes through unchanged, if it is an exact no-op. */
function noopInput(n: Node): Value | undefined {
  if ((n.domain !== '' && n.domain !== 'ai.onnx') || n.outputs.length !== 1) return undefined;
  const x = n.inputs[0];
  if (!x || x.type?.kind !== 'tensor' && n.opType !== 'Identity') return undefined;
  switch (n.opType) {
    case 'Identity': return x; // also for sequences and optionals
    case 'Cast': return x.tensorType?.elemType === n.attrInt('to') ? x : undefined;
    case 'Reshape': {
      const shape = x.tensorType?.shape;
      const target = constantNumbers(n.inputs[1], 64);
      if (!shape || !target || !shape.every((d): d is number => typeof d === 'number') || target.length !== shape.length) return undefined;
      const allowZero = n.attrInt('allowzero', 0) === 1;
      // Equal when every target dim is the input's dim, or 0 (copy), or a single -1 (then inferred equal).
      let minus = 0;
      const same = target.every((d, i) => d === shape[i] || (d === 0 && !allowZero) || (d === -1 && ++minus === 1));
      return same && minus <= 1 ? x : undefined;
    }
    default: return undefined;
  }
}

function removable(g: Graph, out: Value, x: Value): boolean {
  if (!out.isGraphOutput()) return true;
  return x.graph === g && !x.isGraphInput() && !x.initializer && !x.isGraphOutput();
}
