/**
 * Trained weights back into a model (Trainer.exportModel): parameters are float32 initializers of
 * the adopted export (src/runtime/session.ts adoptExport) under their own names; the step graph
 * takes them as inputs.
 */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { DataType } from '../onnx/schema.js';

/**
 * Replace the initializers named in `params` with those values (float32, same element count; the
 * arrays are used, not copied). Every name must be a float32 initializer of the model's main graph.
 * Returns the model.
 */
export function setParameters(model: Model, params: Map<string, Float32Array>): Model {
  const byName = new Map(model.graph.initializers.map((v) => [v.name, v]));
  for (const [name, value] of params) {
    const v = byName.get(name) ?? fail('invalid', `setParameters: the model has no initializer '${name}' (parameters come from the model the trainer was created with)`);
    const t = v.initializer!;
    if (t.dtype !== DataType.FLOAT) fail('invalid', `setParameters: initializer '${name}' is not float32`);
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (!(value instanceof Float32Array) || value.length !== n) fail('invalid', `setParameters: '${name}' has shape [${t.dims}] (${n} values), got ${value?.length} values`);
    v.initializer = Tensor.fromBytes(DataType.FLOAT, t.dims, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  return model;
}
