/** SwiGLUMLP and its backward op SwiGLUMLPGrad, as listed in custom-ops/registry.ts. */
import type { Node } from '../../src/ir/graph.js';
import type { DimsOf } from '../../src/autodiff/memory-plan.js';
import type { FusedOpRecord } from '../../src/ops/record.js';
import { swigluMlp } from './function.js';
import { swigluMlpGrad } from './grad.js';
import { swigluMlpGradOp } from './grad-function.js';
import { swigluMlpGradKernel, swigluMlpKernel } from './webgpu/entry.js';

/**
 * The [rows, I] intermediates one call holds (webgpu/mlp.ts): gate and up in the forward; gate,
 * up and dh in the backward. 4-byte elements (the kernel is fp32; the bodies hold at least as many).
 */
const workspace = (count: number) => (n: Node, dims: DimsOf): number | undefined => {
  const x = n.input(0) && dims(n.input(0)!), w = n.input(1) && dims(n.input(1)!);
  if (!x || !w || w.length !== 2 || !x.length) return undefined;
  return count * (x.reduce((a, b) => a * b, 1) / x[x.length - 1]) * w[0] * 4;
};

/** Not recomputable: its output costs three GEMMs (and nothing saves it: the residual Add's gradient does not read it). */
export const swigluMlpRecord: FusedOpRecord = { ...swigluMlp, grad: swigluMlpGrad, webgpu: swigluMlpKernel, workspace: workspace(2) };

export const swigluMlpGradRecord: FusedOpRecord = { ...swigluMlpGradOp, webgpu: swigluMlpGradKernel, workspace: workspace(3) };
