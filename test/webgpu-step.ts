/**
 * One training step's loss and gradients on a fresh onnxruntime-web WebGPU trainer (dawn.node),
 * for tests that compare kernel policies or graph forms of the same step: AdamW settings are
 * irrelevant (no update is applied), the trainer is released afterwards.
 */
import type { Batch } from '../src/data/batches.js';
import type { Model } from '../src/ir/graph.js';
import { createNodeWebGpuTrainer } from '../src/runtime/webgpu/ort-web-node.js';
import type { OpPolicy, SpecShape } from '../src/runtime/webgpu/training-spec.js';
import type { WebGpuTrainer } from '../src/runtime/webgpu/trainer.js';

export async function stepGradients(p: { train: Model; initial: Map<string, Float32Array> }, policy: OpPolicy, shape: SpecShape, batch: Batch, check?: (t: WebGpuTrainer) => void): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const t = await createNodeWebGpuTrainer(p.train, p.initial, { optimizer: { lr: 1e-3 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 1 } }, policy, shape);
  try {
    check?.(t);
    return await t.gradients(batch);
  } finally {
    await t.release();
  }
}
