/**
 * Shape and type inference.
 *
 *   const report = inferShapes(model);          // fills value.type on every node output
 *   report.conflicts                            // declared types that disagree with inference
 *
 * Symbolic dims are kept and combined (`B*S`, `seq-1`; see dims.ts); the values of small integer
 * shape tensors are propagated so runtime-computed Reshape/Expand targets still give symbolic
 * shapes. Ops without a rule are left untyped and listed in `report.unknownOps`.
 *
 * Rules of ops outside the ONNX domain arrive through `opts.rules`, keyed `domain::OpType`: the
 * fused ops' rules come from the caller (`FUSED_INFER_RULES` of custom-ops/registry.ts); the IR
 * knows no op of its own beyond ONNX.
 *
 * A rule is `(node, ctx) => (ValueType | undefined)[]` (see `InferRule` and `InferContext` in
 * context.ts: ctx gives input types, shapes, known constant values and attributes). Import the
 * helpers from './context.js' and './dims.js', not from this file, to avoid an import cycle.
 * Without an entry, an op that is a model-local function is inferred through its body.
 */
import type { Model } from '../graph.js';
import type { InferRule } from './context.js';
import { InferEngine, type InferReport } from './engine.js';
import { CONTROL_RULES } from './rules-control.js';
import { ELEMENTWISE_RULES } from './rules-elementwise.js';
import { NN_RULES } from './rules-nn.js';
import { SHAPE_RULES } from './rules-shape.js';

export type { InferContext, InferRule, KnownValue } from './context.js';
export { broadcastShapes, normAxis, tt, unknownDims } from './context.js';
export { canonDim, dimAdd, dimDiv, dimEq, dimMul, dimProduct, dimSub, evalDim } from './dims.js';
export type { InferConflict, InferReport } from './engine.js';
export { isFullType, joinTypes, mergeType } from './merge.js';

/** Rules of the standard ONNX ops, keyed by op type. */
export const ONNX_RULES: Readonly<Record<string, InferRule>> = {
  ...ELEMENTWISE_RULES,
  ...SHAPE_RULES,
  ...NN_RULES,
  ...CONTROL_RULES,
};

export interface InferOptions {
  /**
   * Extra or overriding rules keyed `domain::OpType` (`::Add` for the default domain), e.g. the
   * fused ops' (FUSED_INFER_RULES). Without a rule, a model-local function is inferred through its body.
   */
  rules?: Record<string, InferRule>;
}

/**
 * Infer and fill the types of every node output in the main graph, its subgraphs and the
 * model-local function bodies. Known types are only refined, never replaced by less precise
 * ones; disagreements are returned as conflicts. Never throws for an unknown or malformed node.
 */
export function inferShapes(model: Model, opts: InferOptions = {}): InferReport {
  return new InferEngine(model, ONNX_RULES, { ...opts.rules }).run();
}
