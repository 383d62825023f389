/**
 * The gradient registry: one explicit list of rule tables (no import side effects). Standard ONNX
 * ops come from src/autodiff/rules; fused ops' rules live beside the ops in custom-ops/<op>/grad.ts
 * and arrive with the op records the caller passes in ({@link gradTable}).
 */
import { elementwiseRules } from './rules/elementwise.js';
import { gatherRules } from './rules/gather.js';
import { lossRules } from './rules/loss.js';
import { matmulRules } from './rules/matmul.js';
import { reduceRules } from './rules/reduce.js';
import { shapeRules } from './rules/shape.js';
import type { DifferentiableOp, GradRule, GradTable } from './types.js';

/** Ops that may sit on a path from a parameter to the loss but pass no gradient (step functions). */
const zeroGradient: GradRule = { save: {}, grads: [] };
const ZERO_GRADIENT_OPS = ['Floor', 'Ceil', 'Round', 'Sign', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli'];

/** The key of an op in a {@link GradTable}: `opType`, or `domain::opType` outside the ONNX domain. */
export function ruleKey(domain: string, opType: string): string {
  return domain && domain !== 'ai.onnx' ? `${domain}::${opType}` : opType;
}

/** The standard ONNX gradient rules. */
export function standardRules(): Map<string, GradRule> {
  const table = new Map<string, GradRule>();
  for (const part of [elementwiseRules, matmulRules, reduceRules, shapeRules, gatherRules, lossRules])
    for (const [op, rule] of Object.entries(part)) table.set(op, rule);
  for (const op of ZERO_GRADIENT_OPS) table.set(op, zeroGradient);
  return table;
}

/**
 * The standard table plus the rules `ops` bring: each op's own rule (keyed `domain::name`) and the
 * standard ONNX ops it also serves (RMSNorm's rule differentiates RMSNormalization-23).
 */
export function gradTable(ops: readonly DifferentiableOp[]): GradTable {
  const table = standardRules();
  for (const op of ops) {
    if (op.grad) table.set(ruleKey(op.schema.domain, op.schema.name), op.grad);
    for (const [key, rule] of Object.entries(op.standardGrads ?? {})) table.set(key, rule);
  }
  return table;
}
