/** CausalAttention and its backward op CausalAttentionGrad, as listed in custom-ops/registry.ts. */
import type { Node } from '../../src/ir/graph.js';
import type { DimsOf } from '../../src/autodiff/memory-plan.js';
import type { FusedOpRecord } from '../../src/ops/record.js';
import { causalAttention } from './function.js';
import { causalAttentionGrad } from './grad.js';
import { causalAttentionGradOp } from './grad-function.js';
import { causalAttentionGradKernel, causalAttentionKernel } from './webgpu/entry.js';

/**
 * The kernels' intermediates (webgpu/attention.ts), fp32: [B, Hq, T, T] scores — one buffer in the
 * forward (S, then P in place), two in the backward (P and dS) — and in the backward, where
 * Hq > Hkv, the per-query-head partial of dK and dV [B, Hq, T, D]. (The portable bodies hold
 * [B, Hq, T, T] scores too; ORT's own planner sees those, the activation plan counts our kernels.)
 */
const scoreBytes = (buffers: number, partial: boolean) => (n: Node, dims: DimsOf): number | undefined => {
  const q = n.input(0) && dims(n.input(0)!), k = n.input(1) && dims(n.input(1)!);
  if (!q || q.length !== 4 || !k || k.length !== 4) return undefined;
  const [b, hq, t, d] = q;
  return 4 * (buffers * b * hq * t * t + (partial && hq > k[1] ? b * hq * t * d : 0));
};

/** One [B, Hq, T, T] fp32 score buffer: the largest temporary of either kernel. */
const scoreBuffer = scoreBytes(1, false);

/** Not recomputable: recomputing o costs the whole attention. */
export const causalAttentionRecord: FusedOpRecord = { ...causalAttention, grad: causalAttentionGrad, webgpu: causalAttentionKernel, workspace: scoreBytes(1, false), workspaceLargest: scoreBuffer };

export const causalAttentionGradRecord: FusedOpRecord = { ...causalAttentionGradOp, webgpu: causalAttentionGradKernel, workspace: scoreBytes(2, true), workspaceLargest: scoreBuffer };
