/**
 * Frozen parameters on the webgpu backend: the step graph keeps them as initializers (no gradient),
 * but there they would be embedded in every segment's proto (a 0.5B base is ~2 GB: protobuf's limit,
 * and ORT-web's wasm heap) and our kernels, which read only fed or computed values, could not see
 * them. So they become graph inputs too: uploaded once into GPU buffers, fed every step, with no
 * gradient and no AdamW moments (WebGpuTrainer skips those for inputs without a gradient output).
 */
import type { Model } from '../../ir/graph.js';
import { DataType } from '../../onnx/schema.js';
import { BUFFER_PATTERNS, PARAMETER_NAME } from '../../autodiff/training.js';

/**
 * Move `m`'s float32 initializers named like a module parameter (`model.layers.0.mlp.up_proj.weight`;
 * not buffers, not scalars) to graph inputs; returns their values by name. Changes `m`.
 */
export function frozenToInputs(m: Model): Map<string, Float32Array> {
  const g = m.graph;
  const moved = new Map<string, Float32Array>();
  const keep = [];
  for (const v of g.initializers) {
    const t = v.initializer!;
    if (t.dtype === DataType.FLOAT && t.size > 1 && PARAMETER_NAME.test(v.name) && !BUFFER_PATTERNS.some((p) => p.test(v.name))) {
      moved.set(v.name, t.toArray() as Float32Array);
      v.initializer = undefined;
      g.inputs.push(v);
    } else keep.push(v);
  }
  g.initializers = keep;
  return moved;
}
