/** A model's state dict under the torch names (no `node:` imports: the page builds weight files with it). */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import type { ParameterDiscovery } from './discover.js';
import type { NamedTensor } from './safetensors-bytes.js';

/** Every parameter of `model` (adopted: initializers named like `discovery`'s parameters), trained values where given. */
export function stateDict(model: Model, discovery: ParameterDiscovery, trained: ReadonlyMap<string, Float32Array>): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  for (const p of discovery.parameters) {
    const v = model.graph.initializers.find((x) => x.name === p.name);
    const data = trained.get(p.name) ?? (v && v.initializer!.dtype === DataType.FLOAT ? (v.initializer!.toArray() as Float32Array) : undefined);
    if (!data) fail('invalid', `cannot save parameter '${p.name}': no float32 value`);
    out.set(p.name, { shape: p.shape, data });
  }
  return out;
}

