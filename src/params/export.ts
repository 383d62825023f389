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
import { saveSafetensors, type SafetensorsDtype } from './safetensors.js';
import { stateDict } from './state-dict.js';

export { stateDict };

/** Write the state dict as safetensors (atomic). */
export function saveWeights(file: string, model: Model, discovery: ParameterDiscovery, trained: ReadonlyMap<string, Float32Array>, metadata: Record<string, string> = {}, dtype: SafetensorsDtype = 'F32'): number {
  const sd = stateDict(model, discovery, trained);
  saveSafetensors(file, sd, { format: 'pt', producer: 'ortfuse', ...metadata }, dtype);
  return sd.size;
}

/**
 * Replace the initializers named in `params` with those values (float32, same element count; the
 * arrays are used, not copied). Every name must be a float32 initializer of the model's main graph.
 * Returns the model.
 */
export function setParameters(model: Model, params: ReadonlyMap<string, Float32Array>): Model {
  const byName = new Map(model.graph.initializers.map((v) => [v.name, v]));
  for (const [name, value] of params) {
    const v = byName.get(name) ?? fail('invalid', `setParameters: the model has no initializer '${name}' (parameters come from the model the trainer was created with)`);
    const t = v.initializer!;
    if (t.dtype !== DataType.FLOAT) fail('invalid', `setParameters: initializer '${name}' is not float32`);
    if (!(value instanceof Float32Array) || value.length !== t.size) fail('invalid', `setParameters: '${name}' has shape [${t.dims}] (${t.size} values), got ${value?.length} values`);
    v.initializer = Tensor.from(DataType.FLOAT, t.dims.slice(), value);
  }
  return model;
}

/** Put the trained values into `model`'s initializers (in place) and save it (atomic; external data when large). */
export function saveTrainedModel(file: string, model: Model, trained: ReadonlyMap<string, Float32Array>): { model: string; data?: string } {
  return saveFile(setParameters(model, trained), file, { externalData: 'auto' });
}

/**
 * The safetensors dtype that gives a model's weights back in the precision it was exported in:
 * BF16 / F16 for a model upcast from bfloat16 / float16 (`from` of passes/upcast-float.ts), else F32.
 */
export function savedDtype(from: readonly string[] | undefined): SafetensorsDtype {
  return from?.length === 1 ? ({ bfloat16: 'BF16', float16: 'F16' } as const)[from[0] as 'bfloat16' | 'float16'] ?? 'F32' : 'F32';
}
