/**
 * Reverse-mode autodiff on the IR (stock ONNX ops only) and the training-step graph builder.
 */
export { addGradients, type GradientOptions, type GradientResult } from './backward.js';
export { defaultRules, ruleKey, standardRules } from './table.js';
export type { GradContext, GradFn, GradRule, GradTable } from './types.js';
