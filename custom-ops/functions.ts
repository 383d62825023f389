/**
 * Portable bodies of the registered fused ops (custom-ops/registry.ts): src/fused/functions.ts
 * bound to the list, with ops also found by name.
 */
import type { Model, ModelFunction } from '../src/ir/graph.js';
import * as core from '../src/fused/functions.js';
import type { BodyOptions, FusedOp, Target } from '../src/fused/types.js';
import { FUSED_OPS } from './registry.js';

export { bodiesTarget } from '../src/fused/functions.js';

/** The body of `op` (an op or its name) in `model.functions`, for `target` (see src/fused/functions.ts). */
export function ensureFunction(model: Model, op: FusedOp | string, target: Target, opts?: BodyOptions): ModelFunction {
  return core.ensureFunction(model, typeof op === 'string' ? core.findOp(FUSED_OPS, op) : op, target, opts);
}

/** Ensure the body of every registered fused op the main graph calls, for `target`. Returns the ops' names. */
export function ensureFunctions(model: Model, target: Target): string[] {
  return core.ensureFunctions(model, target, FUSED_OPS);
}
