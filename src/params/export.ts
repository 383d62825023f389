/**
 * Trained weights back in the forms the ecosystem loads:
 * - safetensors under the torch names (the exporter's folded transposes undone by ./adopt.ts, tied
 *   weights once, under the name torch's `named_parameters()` gives), which transformers'
 *   `Qwen2ForCausalLM.load_state_dict` / `from_pretrained` read; frozen parameters are included with
 *   their original values, so the file is a whole state dict;
 * - the exported ONNX model with the trained values in place of the initial ones (same graph:
 *   inputs, outputs, loss), runnable in any ONNX Runtime.
 */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { DataType } from '../onnx/schema.js';
import { saveFile } from '../onnx/io.js';
import type { ParameterDiscovery } from './discover.js';
import { saveSafetensors, type NamedTensor } from './safetensors.js';

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

/** Write the state dict as safetensors (atomic). */
export function saveWeights(file: string, model: Model, discovery: ParameterDiscovery, trained: ReadonlyMap<string, Float32Array>, metadata: Record<string, string> = {}): number {
  const sd = stateDict(model, discovery, trained);
  saveSafetensors(file, sd, { format: 'pt', producer: 'ortfuse', ...metadata });
  return sd.size;
}

/** Put the trained values into `model`'s initializers (in place) and save it (atomic; external data when large). */
export function saveTrainedModel(file: string, model: Model, trained: ReadonlyMap<string, Float32Array>): { model: string; data?: string } {
  for (const v of model.graph.initializers) {
    const data = trained.get(v.name);
    if (!data) continue;
    const t = v.initializer!;
    if (t.size !== data.length) fail('invalid', `cannot save the model: parameter '${v.name}' has ${data.length} trained values for shape [${t.dims}]`);
    v.initializer = Tensor.from(DataType.FLOAT, t.dims.slice(), data);
  }
  return saveFile(model, file, { externalData: 'auto' });
}
