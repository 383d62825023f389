/**
 * Model copies and dead-code removal used by the training-graph builder. A copy shares tensor
 * bytes with the original (in-memory data are not copied, external data stay references).
 */
import { modelFromProto } from '../ir/from-proto.js';
import type { Graph, Model, Value } from '../ir/graph.js';
import { modelToProto } from '../ir/to-proto.js';
import type { Tensor } from '../ir/tensor.js';
import { toLong } from '../ir/long.js';

/** A structurally independent copy of `model` (tensor data shared or referenced). */
export function cloneModel(model: Model): Model {
  const sink = (t: Tensor, name: string): any => {
    if (t.external) {
      const kv = [
        { key: 'location', value: t.external.file },
        { key: 'offset', value: String(t.external.offset) },
        ...(t.external.length !== undefined ? [{ key: 'length', value: String(t.external.length) }] : []),
      ];
      return { dims: t.dims.map(toLong), data_type: t.dtype, name, external_data: kv, data_location: 1 };
    }
    if (t.proto) return t.proto.name === name ? t.proto : { ...t.proto, name };
    return { dims: t.dims.map(toLong), data_type: t.dtype, name, raw_data: t.bytes() };
  };
  return modelFromProto(modelToProto(model, sink), { baseDir: model.baseDir, source: 'clone' });
}

/**
 * Remove nodes of the main graph that no graph output depends on, and initializers nothing
 * reads. Graph inputs are kept.
 */
export function removeDeadCode(g: Graph): void {
  const live = new Set<Value>(g.outputs);
  const keep = new Set<(typeof g.nodes)[number]>();
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (!n.outputs.some((o) => live.has(o))) continue;
    keep.add(n);
    for (const v of n.inputs) if (v) live.add(v);
    for (const sg of n.subgraphs()) for (const v of sg.outerReferences()) live.add(v);
  }
  const dead = g.nodes.filter((n) => !keep.has(n));
  for (const n of dead) n.detachInputs();
  g.nodes = g.nodes.filter((n) => keep.has(n));
  for (const n of dead) for (const o of n.outputs) o.producer = undefined;
  g.initializers = g.initializers.filter((v) => live.has(v) || v.useCount > 0);
  g.valueInfoOrder = g.valueInfoOrder.filter((v) => (v.producer && keep.has(v.producer)) || v.isGraphInput() || !!v.initializer);
}
