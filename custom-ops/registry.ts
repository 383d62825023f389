/**
 * The fused ops of domain ai.ortfuse (version 1), in one explicit list: one record per op
 * (custom-ops/<op>/record.ts; the record type is src/ops/record.ts). Adding an op = its folder and
 * one line here. The callers at the top (src/pipeline.ts, the CLI, the runtime entry points, the
 * passes) hand this list to src/ir, src/autodiff and src/runtime; nothing under src/ imports an op.
 */
import { inferRules } from '../src/fused/types.js';
import type { FusedOpRecord } from '../src/ops/record.js';
import { causalAttentionGradRecord, causalAttentionRecord } from './causal-attention/record.js';
import { linearCrossEntropyRecord, linearCrossEntropyWithGradRecord } from './fused-linear-cross-entropy/record.js';
import { linearGradRecord, linearRecord } from './linear/record.js';
import { rmsNormGradRecord, rmsNormRecord } from './rms-norm/record.js';
import { ropeGradRecord, ropeRecord } from './rope/record.js';
import { swigluGradRecord, swigluRecord } from './swiglu/record.js';
import { swigluMlpGradRecord, swigluMlpKeepGradRecord, swigluMlpKeepRecord, swigluMlpRecord } from './swiglu-mlp/record.js';

/** Forward ops, then the backward ops the gradient rules emit (RMSNormGrad, SwiGLUGrad, RoPEGrad, SwiGLUMLPGrad, SwiGLUMLPKeepGrad, CausalAttentionGrad, LinearGrad); SwiGLUMLPKeep is the form of SwiGLUMLP the autodiff swaps in. */
export const FUSED_OPS: readonly FusedOpRecord[] = [
  linearCrossEntropyRecord,
  linearCrossEntropyWithGradRecord,
  rmsNormRecord,
  swigluRecord,
  ropeRecord,
  swigluMlpRecord,
  swigluMlpKeepRecord,
  causalAttentionRecord,
  linearRecord,
  rmsNormGradRecord,
  swigluGradRecord,
  ropeGradRecord,
  swigluMlpGradRecord,
  swigluMlpKeepGradRecord,
  causalAttentionGradRecord,
  linearGradRecord,
];

/** Shape/type rules of every fused op, for inferShapes' `rules`. */
export const FUSED_INFER_RULES = inferRules(FUSED_OPS);
