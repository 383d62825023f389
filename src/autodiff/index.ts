/**
 * Reverse-mode autodiff on the IR (stock ONNX ops only) and the training-step graph builder.
 */
export { addGradients, type GradientOptions, type GradientResult } from './backward.js';
export { gradTable, ruleKey, standardRules } from './table.js';
export type { DifferentiableOp, GradContext, GradFn, GradRule, GradTable } from './types.js';
export { cloneModel, removeDeadCode } from './clone.js';
export { replaceForwardNode, AUTODIFF_TAG } from './in-forward.js';
export {
  buildTrainingGraph, trainingSignature, BUFFER_PATTERNS, PARAMETER_NAME, GRAD_IN_PREFIX, GRAD_PREFIX,
  type TrainingGraphOptions, type TrainingSignature,
} from './training.js';
