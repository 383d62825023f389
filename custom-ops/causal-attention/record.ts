/** CausalAttention and its backward op CausalAttentionGrad, as listed in custom-ops/registry.ts. */
import type { Node } from '../../src/ir/graph.js';
import type { DimsOf } from '../../src/autodiff/memory-plan.js';
import type { FusedOpRecord } from '../../src/ops/record.js';
import { causalAttention } from './function.js';
import { causalAttentionGrad } from './grad.js';
import { causalAttentionGradOp } from './grad-function.js';
import { causalAttentionGradKernel, causalAttentionKernel } from './webgpu/entry.js';

/**
 * The kernels' intermediates (webgpu/attention.ts): [B, Hq, T, T] fp32 scores — one buffer in the
 * forward (S, then P in place), two in the backward (P and dS). (The portable bodies hold
 * [B, Hq, T, T] scores too; ORT's own planner sees those, the activation plan counts our kernels.)
 */
const scoreBytes = (buffers: number) => (n: Node, dims: DimsOf): number | undefined => {
  const q = n.input(0) && dims(n.input(0)!);
  return q && q.length === 4 ? buffers * q[0] * q[1] * q[2] * q[2] * 4 : undefined;
};

/** Not recomputable: recomputing o costs the whole attention. */
export const causalAttentionRecord: FusedOpRecord = { ...causalAttention, grad: causalAttentionGrad, webgpu: causalAttentionKernel, workspace: scoreBytes(1) };

export const causalAttentionGradRecord: FusedOpRecord = { ...causalAttentionGradOp, webgpu: causalAttentionGradKernel, workspace: scoreBytes(2) };
