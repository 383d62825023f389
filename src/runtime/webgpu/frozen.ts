/**
 * Frozen weights (LoRA's base model, `freeze`) stay initializers of the training-step graph, which
 * ORT segments embed. Our WGSL kernels read GPU buffers, not ORT's initializers: a float
 * initializer that a fused op reads (the tied lm_head of linear-CE, RMSNorm weights) becomes a
 * graph input of the webgpu copy, fed like a parameter but never updated (ParamSpec.frozen).
 */
import type { Model } from '../../ir/graph.js';
import { tensorType } from '../../ir/types.js';
import { DataType } from '../../onnx/schema.js';
import type { ParamSpec } from './trainer.js';

const FUSED_DOMAIN = 'ai.ortfuse';

/** Turn the float initializers that fused ops read into graph inputs of `m` (changed in place); their specs. */
export function feedFrozenFusedInputs(m: Model): ParamSpec[] {
  const g = m.graph;
  const read = new Set(g.nodes.filter((n) => n.domain === FUSED_DOMAIN).flatMap((n) => n.inputs));
  const moved = g.initializers.filter((v) => read.has(v) && v.initializer!.dtype === DataType.FLOAT);
  if (!moved.length) return [];
  g.initializers = g.initializers.filter((v) => !moved.includes(v));
  return moved.map((v) => {
    const t = v.initializer!;
    v.initializer = undefined;
    v.type = tensorType(t.dtype, t.dims.slice());
    g.inputs.push(v);
    return { name: v.name, dims: t.dims.slice(), value: t.toArray() as Float32Array, frozen: true };
  });
}
