/** SwiGLUMLP, its saving form SwiGLUMLPKeep, and their backward ops, as listed in custom-ops/registry.ts. */
import type { Node } from '../../src/ir/graph.js';
import type { DimsOf } from '../../src/autodiff/memory-plan.js';
import type { FusedOpRecord } from '../../src/ops/record.js';
import { swigluMlp, swigluMlpKeep } from './function.js';
import { swigluMlpGrad, swigluMlpKeepGrad } from './grad.js';
import { swigluMlpGradOp, swigluMlpKeepGradOp } from './grad-function.js';
import { swigluMlpGradKernel, swigluMlpKeepGradKernel, swigluMlpKeepKernel, swigluMlpKernel } from './webgpu/entry.js';

/** Rows (x's leading axes flattened), H and I of a node reading x [..., H] and w_gate [I, H]; undefined where unknown. */
function mlpDims(n: Node, dims: DimsOf): { rows: number; h: number; i: number } | undefined {
  const x = n.input(0) && dims(n.input(0)!), w = n.input(1) && dims(n.input(1)!);
  if (!x || !w || w.length !== 2 || !x.length) return undefined;
  return { rows: x.reduce((a, b) => a * b, 1) / x[x.length - 1], h: w[1], i: w[0] };
}

/**
 * The [rows, I] intermediates one call holds (webgpu/mlp.ts): gate and up in SwiGLUMLP's forward,
 * the activation in SwiGLUMLPKeep's (gate and up are its outputs); gate, up and dh in
 * SwiGLUMLPGrad, dh alone in SwiGLUMLPKeepGrad (it works in its g and u inputs, read by nothing
 * after it). 4-byte elements (the kernel is fp32; the bodies hold at least as many).
 */
const workspace = (count: number) => (n: Node, dims: DimsOf): number | undefined => {
  const d = mlpDims(n, dims);
  return d && count * d.rows * d.i * 4;
};

/** Not recomputable: its output costs three GEMMs (and nothing saves it: the residual Add's gradient does not read it). */
export const swigluMlpRecord: FusedOpRecord = { ...swigluMlp, grad: swigluMlpGrad, webgpu: swigluMlpKernel, workspace: workspace(2), workspaceLargest: workspace(1) };

export const swigluMlpKeepRecord: FusedOpRecord = { ...swigluMlpKeep, grad: swigluMlpKeepGrad, webgpu: swigluMlpKeepKernel, workspace: workspace(1), workspaceLargest: workspace(1) };

export const swigluMlpGradRecord: FusedOpRecord = { ...swigluMlpGradOp, webgpu: swigluMlpGradKernel, workspace: workspace(3), workspaceLargest: workspace(1) };

/** Its recomputing form is SwiGLUMLPGrad, at the cost of the two projections: 2 · 2·rows·H·I FLOPs. */
export const swigluMlpKeepGradRecord: FusedOpRecord = {
  ...swigluMlpKeepGradOp, webgpu: swigluMlpKeepGradKernel, workspace: workspace(1), workspaceLargest: workspace(1),
  recomputingForm: {
    op: swigluMlpGradOp.schema.name,
    saved: [5, 6],
    forward: swigluMlp.schema.name,
    flops(n, dims) {
      const d = mlpDims(n, dims);
      return d && 4 * d.rows * d.h * d.i;
    },
  },
};
