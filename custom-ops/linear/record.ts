/** Linear and LinearGrad, as listed in custom-ops/registry.ts. */
import type { Node } from '../../src/ir/graph.js';
import type { DimsOf } from '../../src/autodiff/memory-plan.js';
import type { FusedOpRecord } from '../../src/ops/record.js';
import { linear, linearGradOp } from './function.js';
import { linearGrad } from './grad.js';
import { linearGradKernel, linearKernel } from './webgpu/entry.js';

/** Not recomputable: its output costs a GEMM. No workspace: the forward kernel writes y only. */
export const linearRecord: FusedOpRecord = { ...linear, grad: linearGrad, webgpu: linearKernel };

/** The backward kernel's one temporary: db's ones [rows] (webgpu/linear.ts), 4-byte elements; none when nothing reads db. */
function onesBytes(n: Node, dims: DimsOf): number | undefined {
  const db = n.outputs[2];
  if (!db || !(db.useCount || db.isGraphOutput())) return 0;
  const x = n.input(0) && dims(n.input(0)!);
  return x && x.length ? (x.reduce((a, b) => a * b, 1) / x[x.length - 1]) * 4 : undefined;
}

export const linearGradRecord: FusedOpRecord = { ...linearGradOp, webgpu: linearGradKernel, workspace: onesBytes };
