/**
 * The training-step graph: (parameters…, input_ids, labels[, grad_in.<p>…]) → (loss, grad.<p>…).
 *
 * Naming:
 * - each trainable parameter becomes a graph input with its initializer's name and shape;
 * - its gradient is the graph output `grad.<name>` (`GRAD_PREFIX + name`);
 * - with gradient accumulation, the input `grad_in.<name>` is added to it: `grad.<name>` then holds
 *   the running sum (feed zeros on the first micro-batch);
 * - frozen parameters and non-trainable float initializers (constants, buffers such as RoPE's
 *   inv_freq) stay initializers and get no gradient.
 * - with `lossScaleInput`, the float32 scalar input `loss_scale` seeds the backward: every
 *   `grad.<name>` is the gradient times it (dynamic loss scaling; the loss output is not scaled).
 * The loss is the only other output; outputs such as logits are dropped with the nodes only they
 * needed. Only stock ONNX ops and ai.ortfuse ops are added (no com.microsoft training ops), so the
 * graph runs on stock onnxruntime-node and onnxruntime-web once the fused ops' bodies are attached
 * (ensureFunctions; done here, for `opts.ops`, for the target of the bodies the forward model already
 * carries).
 */
import { fail } from '../errors.js';
import { bodiesTarget, ensureFunctions } from '../fused/functions.js';
import { inferRules } from '../fused/types.js';
import { GraphBuilder } from '../ir/builder.js';
import { check } from '../ir/checker.js';
import type { Model, Node, Value } from '../ir/graph.js';
import { inferShapes } from '../ir/infer/index.js';
import type { Tensor } from '../ir/tensor.js';
import { tensorType } from '../ir/types.js';
import { addGradients } from './backward.js';
import { cloneModel, removeDeadCode } from './clone.js';
import { isFloatType } from './dtype.js';
import { AUTODIFF_TAG, IN_FORWARD_KEY } from './in-forward.js';
import { recomputeInBackward, type RecomputeOptions, type RecomputeReport } from './recompute.js';
import { gradTable } from './table.js';
import type { DifferentiableOp, GradTable } from './types.js';
import { DataType } from '../onnx/schema.js';
import { GRAD_IN_PREFIX, GRAD_PREFIX, LOSS_SCALE } from './names.js';

export { GRAD_IN_PREFIX, GRAD_PREFIX, LOSS_SCALE };

/** Float initializers matching these are buffers, not parameters, unless named in `trainable`. */
export const BUFFER_PATTERNS: readonly RegExp[] = [/(^|\.)inv_freq$/, /(^|\.)running_(mean|var)$/, /(^|\.)(cos|sin)_cached$/];

/**
 * A parameter's name as exporters write it: a module path (`model.layers.0.mlp.up_proj.weight`,
 * torch state_dict keys). Lifted constants and buffers get other names (`val_6`, `expand_2`).
 */
export const PARAMETER_NAME = /^[A-Za-z_]\w*(\.\w+)+$/;

export interface TrainingGraphOptions {
  /**
   * The fused ops the model may call, with their shape and gradient rules and portable bodies
   * (the callers pass FUSED_OPS of custom-ops/registry.ts).
   */
  ops: readonly DifferentiableOp[];
  /** Name of the loss value (default 'loss'); it must be a float value of the model. */
  loss?: string;
  /**
   * Parameters to train: names, or a predicate over float initializers. Default: every float
   * initializer with more than one element that the loss depends on, named like a module path
   * ({@link PARAMETER_NAME}; when no initializer is, any name), except buffers
   * ({@link BUFFER_PATTERNS}).
   */
  trainable?: readonly string[] | ((name: string, tensor: Tensor) => boolean);
  /** Parameters kept fixed (they stay initializers, no gradient). */
  frozen?: readonly string[];
  /** Add `grad_in.<p>` inputs and output `grad.<p>` = grad_in + gradient. */
  gradientAccumulation?: boolean;
  /**
   * Add the graph input `loss_scale` (float32, shape []) and use it as the backward's seed, so each
   * gradient output is scaled by it (mixed precision's dynamic loss scaling: small gradients stay
   * above f16's underflow in the backward's GEMMs; the trainer divides the scale out). The loss
   * output is not scaled. Needs a float32 scalar loss. Default false: the seed is the constant 1.
   */
  lossScaleInput?: boolean;
  /** Gradient rules (default: the standard ONNX rules and those of `ops`: gradTable(ops)). */
  rules?: GradTable;
  /**
   * In-forward gradients where a rule offers them (default true): linear-CE computes its
   * gradients inside its forward chunk loop (Liger). False: backward-only rules (for comparison).
   */
  inForward?: boolean;
  /**
   * Keep each trainable parameter's initial value as the default of its graph input (an
   * initializer of the same name, which ONNX Runtime lets a feed override), so the written step
   * graph carries its weights and runs with only input_ids and labels fed. Default false.
   */
  parameterDefaults?: boolean;
  /**
   * Recompute cheap forward values in the backward instead of keeping them alive between the
   * passes (./recompute.ts): transposed weights, reshapes, SwiGLU and RMSNorm outputs, attention
   * probabilities. Default true. Sessions running the graph must disable ONNX Runtime's CSE
   * ({@link NO_CSE_SESSION_CONFIG}) or it merges the clones back.
   */
  recompute?: boolean | RecomputeOptions;
}

/** Parameter/gradient names of a training graph built by {@link buildTrainingGraph}. */
export interface TrainingSignature {
  loss: string;
  /** Trainable parameters, in graph-input order. */
  parameters: string[];
  /** Gradient output of each parameter. */
  gradients: Map<string, string>;
}

/** Build the training-step graph of a forward model with a loss. The input model is not changed. */
export function buildTrainingGraph(model: Model, opts: TrainingGraphOptions): Model {
  const m = cloneModel(model);
  const g = m.graph;
  const lossName = opts.loss ?? 'loss';
  const loss = g.findValue(lossName) ?? fail('usage', `training graph: no value named '${lossName}' (graph outputs: ${g.outputs.map((v) => v.name).join(', ')})`);
  g.outputs = [loss];
  removeDeadCode(g);
  inferShapes(m, { rules: inferRules(opts.ops) });

  const frozen = new Set(opts.frozen ?? []);
  const floats = g.initializers.filter((v) => isFloatType(v.initializer!.dtype));
  for (const f of frozen) if (!floats.some((v) => v.name === f)) fail('usage', `training graph: frozen parameter '${f}' is not a float initializer the loss depends on`);
  const explicit = Array.isArray(opts.trainable) ? new Set<string>(opts.trainable) : undefined;
  if (explicit) for (const n of explicit) if (!floats.some((v) => v.name === n)) fail('usage', `training graph: trainable parameter '${n}' is not a float initializer the loss depends on`);
  const dotted = floats.some((v) => PARAMETER_NAME.test(v.name));
  const pick = (v: Value): boolean => {
    if (frozen.has(v.name)) return false;
    if (explicit) return explicit.has(v.name);
    const t = v.initializer!;
    if (typeof opts.trainable === 'function') return opts.trainable(v.name, t);
    return t.size > 1 && (!dotted || PARAMETER_NAME.test(v.name)) && !BUFFER_PATTERNS.some((p) => p.test(v.name));
  };
  const candidates = floats.filter(pick);

  const seed = opts.lossScaleInput ? lossScaleSeed(m, loss) : undefined;
  const { grads } = addGradients(g, { loss, wrt: candidates, seed, rules: opts.rules ?? gradTable(opts.ops), inForward: opts.inForward });
  const params = candidates.filter((v) => grads.has(v));
  if (explicit) for (const v of candidates) if (!grads.has(v)) fail('usage', `training graph: the loss '${lossName}' does not depend on parameter '${v.name}'`);

  // Parameters become graph inputs (same name, same type); their data leave the model.
  const paramSet = new Set(params);
  if (!opts.parameterDefaults) g.initializers = g.initializers.filter((v) => !paramSet.has(v));
  for (const v of params) {
    const t = v.initializer!;
    if (!opts.parameterDefaults) v.initializer = undefined;
    v.type = tensorType(t.dtype, t.dims.slice());
  }
  g.inputs.push(...params);
  // The seed input last: after the parameters, as an input of its own kind (trainers feed it by name).
  if (seed) g.inputs.push(g.inputs.splice(g.inputs.indexOf(seed), 1)[0]);

  const b = new GraphBuilder(g, { tag: 'autodiff' });
  const claimed = new Set<Value>();
  for (const p of params) {
    let grad = grads.get(p)!;
    const name = GRAD_PREFIX + p.name;
    if (opts.gradientAccumulation) {
      const acc = b.input(GRAD_IN_PREFIX + p.name, p.tensorType!.elemType, p.tensorType!.shape);
      if (acc.name !== GRAD_IN_PREFIX + p.name) fail('usage', `training graph: the name '${GRAD_IN_PREFIX + p.name}' is already used`);
      grad = b.op.Add(acc, grad);
    } else if (claimed.has(grad) || !isBackwardValue(grad) || grad.isGraphOutput()) {
      // Shared with another parameter's gradient, or a forward value: output a copy.
      grad = b.op.Identity(grad);
    }
    claimed.add(grad);
    const fresh = m.freshName(name);
    if (fresh !== name) fail('usage', `training graph: the name '${name}' is already used`);
    grad.name = fresh;
    grad.type = p.type;
    g.outputs.push(grad);
  }
  removeDeadCode(g); // backward pieces no output needs (e.g. gradients of frozen paths)
  if (opts.recompute ?? true) recomputeTrainingGraph(m, typeof opts.recompute === 'object' ? opts.recompute : {}, opts.ops);
  // A forward model that carries fused-op bodies gets those of the backward ops too (same target).
  const target = bodiesTarget(m);
  if (target) ensureFunctions(m, target, opts.ops);
  check(m, 'training graph');
  return m;
}

/** The `loss_scale` input (float32 []) that seeds the backward of a float32 scalar loss. */
function lossScaleSeed(m: Model, loss: Value): Value {
  const t = loss.tensorType;
  if (t?.elemType !== DataType.FLOAT || t.shape?.length !== 0)
    fail('usage', `training graph: a loss-scale input needs a float32 scalar loss, not ${loss.toString()}`);
  if (m.graph.findValue(LOSS_SCALE)) fail('usage', `training graph: the name '${LOSS_SCALE}' is already used`);
  return new GraphBuilder(m.graph, { tag: 'autodiff' }).input(LOSS_SCALE, DataType.FLOAT, []);
}

/**
 * Recompute forward values in the backward of a training graph built with `recompute: false`
 * (./recompute.ts; the graph is changed). The memory planner (./recompute-plan.ts) calls it on copies.
 */
export function recomputeTrainingGraph(m: Model, opts: RecomputeOptions, ops: readonly DifferentiableOp[]): RecomputeReport {
  const backward = (n: Node) => hasMeta(n, 'ortfuse.rule', AUTODIFF_TAG) && !hasMeta(n, IN_FORWARD_KEY, '1');
  const report = recomputeInBackward(m.graph, backward, opts, ops);
  removeDeadCode(m.graph);
  return report;
}

/** True when node `n` carries the metadata entry `key` = `value`. */
function hasMeta(n: Node, key: string, value: string): boolean {
  return n.extra.metadata_props?.some((p: { key: string; value: string }) => p.key === key && p.value === value) ?? false;
}

/** True when `v` was created by the backward pass (so it can be renamed). */
function isBackwardValue(v: Value): boolean {
  return !!v.producer && hasMeta(v.producer, 'ortfuse.rule', AUTODIFF_TAG);
}

/** The parameters and gradient outputs of a training graph (by the naming convention). */
export function trainingSignature(train: Model, loss = 'loss'): TrainingSignature {
  const outs = new Set(train.graph.outputs.map((v) => v.name));
  const parameters = train.graph.inputs.map((v) => v.name).filter((n) => outs.has(GRAD_PREFIX + n));
  return { loss, parameters, gradients: new Map(parameters.map((p) => [p, GRAD_PREFIX + p])) };
}
