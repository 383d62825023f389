/**
 * The shape of a gradient rule (tfjs / tinygrad style): declarative, keyed by op type. A rule
 * says which forward values the backward reads (`save`) and gives one function per input that
 * builds that input's gradient from ordinary ONNX ops, or `undefined` where the input is not
 * differentiable. Rules see the forward node only through a {@link GradContext}.
 */
import type { Dim } from '../ir/types.js';
import type { DimsOf } from './memory-plan.js';
import type { Node, Value } from '../ir/graph.js';
import type { Ops } from '../ir/builder.js';
import type { FusedOp } from '../fused/types.js';

/** Builds the gradient of one input (index `i`) of the forward node; undefined = no gradient. */
export type GradFn = (g: GradContext, i: number) => Value | undefined;

export interface GradRule {
  /**
   * Forward values the backward reads, by index. Reading any other forward value through the
   * context is an error, so this list is exactly what the backward keeps alive. Shapes of inputs
   * and outputs are always available (their Shape nodes run in the forward pass).
   */
  save: { inputs?: number[]; outputs?: number[] };
  /** Gradient of input `i` (undefined entries and missing trailing entries: not differentiable). */
  grads: (GradFn | undefined)[];
  /** For variadic ops (Concat, Sum): the gradient function of every input. */
  variadic?: GradFn;
  /**
   * In-forward gradients (Liger-Kernel's linear-CE): before the backward pass is built, replace the
   * forward node by one that also computes the gradients of the inputs `wrt` during the forward
   * pass (see {@link replaceForwardNode}); the new node's own rule then only scales them by the
   * incoming gradient. Returns the new node, or undefined to keep this one.
   */
  inForward?: (node: Node, wrt: number[]) => Node | undefined;
}

/** Rules keyed by `opType` (default ONNX domain) or `domain::opType`. */
export type GradTable = ReadonlyMap<string, GradRule>;

/** What a rule may use to build its gradient. */
export interface GradContext {
  readonly node: Node;
  /** The op builder; every node it creates belongs to the backward pass. */
  readonly op: Ops<Value>;
  /** Default-domain opset of the model. */
  readonly opset: number;
  /** Forward input `i` (must be declared in `save.inputs`). */
  x(i: number): Value;
  /** Forward output `i` (must be declared in `save.outputs`). */
  y(i: number): Value;
  /** Gradient flowing into output `i` (zeros of the output's shape when none flows). */
  dy(i?: number): Value;
  /** Values of the gradient flowing into output `i` when it is a small constant (e.g. the seed 1). */
  dyConst(i?: number): number[] | undefined;
  /** True when some gradient flows into output `i`. */
  hasDy(i: number): boolean;
  /** Runtime shape (int64 1-D) of input `i`, computed in the forward pass. */
  shapeX(i: number): Value;
  /** Runtime shape (int64 1-D) of output `i`, computed in the forward pass. */
  shapeY(i: number): Value;
  /** Static shape of input `i`, if known. */
  staticShapeX(i: number): Dim[] | undefined;
  /** Static rank of input `i`; throws an 'unsupported' error naming the node if unknown. */
  rankX(i: number): number;
  /** Static rank of output `i`; throws if unknown. */
  rankY(i: number): number;
  /** Element type of input `i` (from types, or propagated). */
  elemTypeX(i: number): number;
  /** Element type of output `i`. */
  elemTypeY(i: number): number;
  /** Values of input `i` when it is a constant (initializer that is not trainable, or Constant). */
  constX(i: number): number[] | undefined;
  /** A scalar constant of element type `elemType`. */
  scalar(value: number, elemType: number): Value;
  /** An int64 constant: 1-D from an array, 0-D from a number. */
  ints(values: number[] | number): Value;
  /**
   * Sum a broadcast `grad` down to the shape of input `i`. `gShape` is grad's static shape
   * (default: output 0's), used to decide the reduction axes statically where possible.
   */
  sumToX(grad: Value, i: number, gShape?: Dim[]): Value;
  /** ReduceSum over static or runtime axes, for any opset ≥ 13. */
  reduceSum(v: Value, axes: number[] | Value, keepdims: boolean): Value;
  /** Unsqueeze with static or runtime axes. */
  unsqueeze(v: Value, axes: number[] | Value): Value;
  /** Zeros shaped like input `i`, of its element type. */
  zerosLikeX(i: number): Value;
  /** Fail with an 'unsupported' error naming the node. */
  unsupported(why: string): never;
}

/**
 * A fused op as autodiff sees it: its schema and portable body (src/fused) and its gradient rule.
 * The op records of custom-ops/ (src/ops/record.ts) are these; callers pass the list in.
 */
export interface DifferentiableOp extends FusedOp {
  /** The op's gradient rule (backward-only ops such as RMSNormGrad have none). */
  grad?: GradRule;
  /** Rules for standard ONNX ops that this op's rule also serves, keyed by op type. */
  standardGrads?: Readonly<Record<string, GradRule>>;
  /** Cheap enough to recompute in the backward instead of keeping its output (./recompute.ts). */
  recomputable?: boolean;
  /**
   * Bytes of the temporaries one call of `node` holds while it runs, besides its inputs and outputs
   * (intermediates inside the op), at the shapes `dims` gives; for the activation plan
   * (./memory-plan.ts). Undefined where a shape is unknown. Default: none.
   */
  workspace?(node: Node, dims: DimsOf): number | undefined;
  /**
   * Bytes of the largest single buffer among those temporaries (what must fit one WebGPU buffer),
   * at the shapes `dims` gives; undefined where a shape is unknown. Default: none.
   */
  workspaceLargest?(node: Node, dims: DimsOf): number | undefined;
  /**
   * For a backward op that reads forward values it could recompute itself (SwiGLUMLPKeepGrad reads
   * SwiGLUMLPKeep's gate and up projections): its recomputing form, which a memory plan may switch
   * a node to (./recompute.ts recomputeInOps).
   */
  recomputingForm?: RecomputingForm;
}

/** See {@link DifferentiableOp.recomputingForm}; ops of the same domain as the op that has it. */
export interface RecomputingForm {
  /** The backward op that recomputes them: the same inputs without `saved`, the same outputs. */
  op: string;
  /** The inputs it then does without: the trailing inputs, the trailing outputs of one forward node. */
  saved: number[];
  /** What that forward node becomes without those outputs (its other outputs and inputs unchanged). */
  forward: string;
  /** FLOPs the recomputation adds per call at the shapes `dims` gives; undefined where a shape is unknown. */
  flops(node: Node, dims: DimsOf): number | undefined;
}

/** The largest-temporary rule of `ops` for memoryPlan (DifferentiableOp.workspaceLargest). */
export function opWorkspaceLargest(ops: readonly DifferentiableOp[], dims: DimsOf): (n: Node) => number {
  const by = new Map(ops.filter((o) => o.workspaceLargest).map((o) => [`${o.schema.domain}::${o.schema.name}`, o]));
  return (n) => by.get(`${n.domain}::${n.opType}`)?.workspaceLargest?.(n, dims) ?? 0;
}

/** The workspace rule of `ops` for memoryPlan: bytes of temporaries of a node of one of them at the shapes `dims` gives. */
export function opWorkspace(ops: readonly DifferentiableOp[], dims: DimsOf): (n: Node) => number {
  const by = new Map(ops.filter((o) => o.workspace).map((o) => [`${o.schema.domain}::${o.schema.name}`, o]));
  return (n) => by.get(`${n.domain}::${n.opType}`)?.workspace?.(n, dims) ?? 0;
}
