/**
 * The gradient registry: one explicit list of rule tables (no import side effects). Standard ONNX
 * ops come from src/autodiff/rules; fused ops' rules live beside them in custom-ops/<op>/grad.ts
 * and are listed here as they land.
 */
import { elementwiseRules } from './rules/elementwise.js';
import { gatherRules } from './rules/gather.js';
import { lossRules } from './rules/loss.js';
import { matmulRules } from './rules/matmul.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';
import type { GradRule, GradTable } from './types.js';
import { linearCrossEntropyGrad, linearCrossEntropyWithGradGrad } from '../../custom-ops/fused-linear-cross-entropy/grad.js';
import { rmsNormGrad } from '../../custom-ops/rms-norm/grad.js';
import { ropeGrad } from '../../custom-ops/rope/grad.js';
import { swigluGrad } from '../../custom-ops/swiglu/grad.js';

/** Rules of the fused ops (custom-ops/<op>/grad.ts), keyed `ai.ortfuse::<op>`. */
const FUSED_RULES: Record<string, GradRule> = {
  'ai.ortfuse::FusedLinearCrossEntropy': linearCrossEntropyGrad,
  'ai.ortfuse::FusedLinearCrossEntropyWithGrad': linearCrossEntropyWithGradGrad,
  'ai.ortfuse::RMSNorm': rmsNormGrad,
  'ai.ortfuse::SwiGLU': swigluGrad,
  'ai.ortfuse::RoPE': ropeGrad,
};

/** Ops that may sit on a path from a parameter to the loss but pass no gradient (step functions). */
const zeroGradient: GradRule = { save: {}, grads: [] };
const ZERO_GRADIENT_OPS = ['Floor', 'Ceil', 'Round', 'Sign', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli'];

/** The key of an op in a {@link GradTable}: `opType`, or `domain::opType` outside the ONNX domain. */
export function ruleKey(domain: string, opType: string): string {
  return domain && domain !== 'ai.onnx' ? `${domain}::${opType}` : opType;
}

/** ONNX RMSNormalization-23 over the last axis is ai.ortfuse::RMSNorm (same attributes). */
const rmsNormalization: GradRule = {
  save: rmsNormGrad.save,
  grads: rmsNormGrad.grads.map((fn) => fn && ((g, i) => {
    const axis = g.node.attrInt('axis', -1);
    if (axis !== -1 && axis !== g.rankX(0) - 1) g.unsupported(`RMSNormalization over axis ${axis} (only the last axis is differentiated)`);
    return fn(g, i);
  })),
};

/** The standard ONNX gradient rules. */
export function standardRules(): Map<string, GradRule> {
  const table = new Map<string, GradRule>();
  for (const part of [elementwiseRules, matmulRules, reduceRules, shapeRules, gatherRules, lossRules])
    for (const [op, rule] of Object.entries(part)) table.set(op, rule);
  table.set('RMSNormalization', rmsNormalization);
  for (const op of ZERO_GRADIENT_OPS) table.set(op, zeroGradient);
  return table;
}

/** Every rule ortfuse knows: the standard table plus the fused ops' rules. */
export function defaultRules(): GradTable {
  const table = standardRules();
  for (const [key, rule] of Object.entries(FUSED_RULES)) table.set(key, rule);
  return table;
}
