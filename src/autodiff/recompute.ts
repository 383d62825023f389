/**
 * Recomputation (rematerialisation) of cheap forward values in the backward pass.
 *
 * A training-step graph keeps every forward value that a backward node reads alive from its
 * producer until that read: these saved activations are most of a step's memory. Many of them
 * are cheap to compute again from values the backward keeps anyway: a transposed weight (from the
 * weight, a graph input), a reshaped or transposed activation, SwiGLU's output (from gate and up,
 * which SwiGLU's own gradient saves), an RMSNorm output (from its input, saved for RMSNorm's
 * gradient), and attention's probabilities (Softmax of q·kᵀ, whose q and k the backward reads for
 * their own gradients). For each such value this pass clones its producer (and the chain of
 * unsaved forward nodes behind it, up to `maxDepth`) into the backward, right before the first
 * backward node that reads it, and points the backward's reads at the clone; the forward value
 * then dies at its last forward use.
 *
 * A value is recomputed only from "available" values: graph inputs (parameters, input_ids,
 * labels), initializers, constants, and forward values the backward saves for other reasons, so
 * no lifetime grows by more than the distance between two backward reads. Projections with a
 * weight (MatMul/Gemm reading a graph input) are never recomputed: they cost a full matmul.
 *
 * Backward ops with a recomputing form (DifferentiableOp.recomputingForm: SwiGLUMLPKeepGrad, which
 * reads SwiGLUMLPKeep's gate and up projections) can instead recompute what they read inside
 * themselves: `inOps` switches them (and their forward node) to that form, {@link recomputeInOps}.
 * Like projections, only when asked: the default keeps them.
 *
 * ONNX Runtime's common-subexpression elimination would merge each clone back into its forward
 * original (same op, same inputs); sessions that run a recomputed graph disable it
 * ({@link NO_CSE_SESSION_CONFIG}).
 */
import type { Graph, Node, Value } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import type { DimsOf } from './memory-plan.js';
import type { DifferentiableOp } from './types.js';

/**
 * ONNX ops whose outputs may be recomputed (no subgraphs, deterministic, cheap next to a
 * projection); fused ops join them through their records (DifferentiableOp.recomputable).
 */
const RECOMPUTABLE = new Set([
  'Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Expand', 'Identity', 'Cast', 'Slice', 'Concat', 'Gather',
  'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Sqrt', 'Reciprocal', 'Pow', 'Exp', 'Sigmoid', 'Tanh', 'Where',
  'Softmax', 'MatMul',
]);

/**
 * Session config entries that keep ONNX Runtime from merging recomputed nodes with their forward
 * originals (pass as `extra` in onnxruntime-node / onnxruntime-web session options).
 */
export const NO_CSE_SESSION_CONFIG = { optimization: { disable_specified_optimizers: 'CommonSubexpressionElimination' } } as const;

export interface RecomputeOptions {
  /** Longest chain of unsaved forward nodes cloned for one saved value (default 6). */
  maxDepth?: number;
  /** Values smaller than this many bytes stay saved (default 64 KiB; symbolic dims count 1024). */
  minBytes?: number;
  /**
   * Also recompute projections (MatMul of an activation and a weight): a full matmul each, so only
   * when a memory budget asks for it (./recompute-plan.ts). Default false.
   */
  projections?: boolean;
  /** Only saved values for which this returns true are recomputed (default: all that qualify). */
  accept?: (v: Value) => boolean;
  /**
   * Switch backward ops to their recomputing forms ({@link recomputeInOps}): all (true), or those
   * whose first saved value this accepts. Default false (they read what the forward kept). Not
   * subject to `accept`.
   */
  inOps?: boolean | ((v: Value) => boolean);
}

export interface RecomputeReport {
  /** Saved forward values now recomputed in the backward. */
  values: number;
  /** Nodes cloned into the backward. */
  nodes: number;
  /** Bytes of the recomputed values, symbolic dims counted as 1 (per batch row and token, then). */
  bytes: number;
  /**
   * Each recomputed value (in the order chosen) with the forward nodes cloned for it first (a
   * node shared by several values is listed with the first); for cost models.
   */
  chosen: { value: Value; cloned: Node[] }[];
  /** Backward ops switched to their recomputing forms (RecomputeOptions.inOps). */
  inOps: InOpRecompute[];
}

/** One backward node switched to its recomputing form by {@link recomputeInOps}. */
export interface InOpRecompute {
  node: Node;
  /** The saved values it recomputes (no longer outputs of their forward node). */
  values: Value[];
  /** FLOPs added per step at the shapes `dims` gives (undefined where unknown). */
  flops(dims: DimsOf): number | undefined;
}

/**
 * Switch each backward node that has a recomputing form (DifferentiableOp.recomputingForm) and
 * whose first saved value `accept` takes to that form: it drops the saved inputs and recomputes
 * them itself, and their producer becomes the forward op that does not output them, so they are
 * never kept. A saved value that something else reads, or a graph output, keeps its node as it is.
 */
export function recomputeInOps(g: Graph, ops: readonly DifferentiableOp[], accept: (v: Value) => boolean = () => true): InOpRecompute[] {
  const forms = new Map(ops.filter((o) => o.recomputingForm).map((o) => [`${o.schema.domain}::${o.schema.name}`, o.recomputingForm!]));
  const done: InOpRecompute[] = [];
  for (const n of g.nodes) {
    const form = forms.get(key(n));
    if (!form) continue;
    const values = form.saved.map((i) => n.input(i));
    const p = values[0]?.producer;
    const first = p ? p.outputs.indexOf(values[0]!) : -1;
    const trailing = form.saved.every((i, k) => i === n.inputs.length - form.saved.length + k) &&
      !!p && first + values.length === p.outputs.length && values.every((v, k) => v === p.outputs[first + k]);
    if (!trailing || values.some((v) => !v || v.isGraphOutput() || v.uses().some((u) => u.node !== n)) || !accept(values[0]!)) continue;
    for (const i of form.saved) n.setInput(i, null);
    n.inputs.length -= form.saved.length;
    n.opType = form.op;
    p!.outputs = p!.outputs.slice(0, first);
    p!.opType = form.forward;
    for (const v of values) v!.producer = undefined;
    done.push({ node: n, values: values as Value[], flops: (dims) => form.flops(n, dims) });
  }
  return done;
}

/** The `ortfuse.rule` tag of the clones. */
export const RECOMPUTE_TAG = 'recompute';

/** True for a node this pass cloned into the backward. */
export function isRecomputeNode(n: Node): boolean {
  return n.extra.metadata_props?.some((p: { key: string; value: string }) => p.key === 'ortfuse.rule' && p.value === RECOMPUTE_TAG) ?? false;
}

/** Ops that only move or relabel their first input's data. */
const VIEW_OPS = new Set(['Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Expand']);

const key = (n: Node) => (n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType);

/**
 * Bytes of `v`; a symbolic dim (batch, seq) counts as `symbolic` elements, for ranking only.
 * Undefined when the rank is unknown.
 */
function sizeBytes(v: Value, symbolic: number): number | undefined {
  const t = v.tensorType;
  if (!t?.shape) return undefined;
  const el = t.elemType === DataType.INT64 || t.elemType === DataType.DOUBLE ? 8 : t.elemType === DataType.FLOAT16 || t.elemType === DataType.BFLOAT16 ? 2 : t.elemType === DataType.BOOL || t.elemType === DataType.UINT8 || t.elemType === DataType.INT8 ? 1 : 4;
  return t.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : symbolic), el);
}

/**
 * Clone cheap forward producers of saved values into the backward (see the file header).
 * `isBackward` tells the backward's nodes; the graph must be in topological order.
 */
export function recomputeInBackward(
  g: Graph, isBackward: (n: Node) => boolean, opts: RecomputeOptions = {}, ops: readonly DifferentiableOp[] = [],
): RecomputeReport {
  const inOps = opts.inOps ? recomputeInOps(g, ops, opts.inOps === true ? undefined : opts.inOps) : [];
  const allowed = new Set([...RECOMPUTABLE, ...ops.filter((o) => o.recomputable).map((o) => `${o.schema.domain}::${o.schema.name}`)]);
  const maxDepth = opts.maxDepth ?? 6;
  const minBytes = opts.minBytes ?? 64 * 1024;
  const order = new Map(g.nodes.map((n, i) => [n, i]));
  const backward = new Set(g.nodes.filter(isBackward));
  const forward = (v: Value) => !!v.producer && order.has(v.producer) && !backward.has(v.producer);
  // Shape and Size read no data: the autodiff places them in the forward pass, and they may keep
  // reading the forward value.
  const readsData = (n: Node) => n.opType !== 'Shape' && n.opType !== 'Size';
  /** Backward nodes reading `v`'s data directly (subgraph reads are not redirected). */
  const backwardReads = (v: Value) => v.uses().filter((u) => backward.has(u.node) && readsData(u.node));
  const saved = new Set<Value>();
  for (const n of backward) if (readsData(n)) for (const v of n.inputs) if (v && forward(v)) saved.add(v);
  const pinned = new Set<Value>();
  for (const n of backward) for (const sg of n.subgraphs()) for (const v of sg.outerReferences()) pinned.add(v);

  const available = (v: Value) => !v.producer || v.isGraphInput() || !!v.initializer || v.producer.opType === 'Constant';
  /** A weight, or a weight reshaped/transposed/cast (not an activation). */
  const weightLike = (v: Value): boolean =>
    (v.isGraphInput() && !v.name.match(/^(input_ids|labels|attention_mask|position_ids)$/)) || !!v.initializer ||
    (!!v.producer && VIEW_OPS.has(v.producer.opType) && !!v.producer.input(0) && weightLike(v.producer.input(0)!));
  const recomputable = (n: Node): boolean => {
    if (!allowed.has(key(n)) || n.subgraphs().length) return false;
    // A projection reads a weight: recomputing it costs a full matmul. Attention's q·kᵀ and p·v do not.
    if (n.opType === 'MatMul') return opts.projections || n.inputs.every((v) => v && !weightLike(v));
    return true;
  };
  const rank = (v: Value) => sizeBytes(v, 1024) ?? Infinity;
  const firstRead = (v: Value) => Math.min(...backwardReads(v).map((u) => order.get(u.node)!));
  /** Values the backward keeps alive: saved ones, and forward values kept longer for a recomputation. */
  const kept = new Set(saved);
  const chosen = new Set<Value>();
  const toClone = new Set<Value>();
  /**
   * Plan the recomputation of `v`: forward values to clone (into `clone`) and forward values that
   * must then stay alive into the backward (into `extend`). False when `v` cannot be recomputed.
   */
  const plan = (v: Value, depth: number, clone: Set<Value>, extend: Set<Value>, reuse: Set<Value>): boolean => {
    const p = v.producer!;
    if (depth > maxDepth || !recomputable(p) || v.isGraphOutput() || pinned.has(v)) return false;
    clone.add(v);
    for (const u of p.inputs) {
      if (u && toClone.has(u)) reuse.add(u);
      if (!u || available(u) || clone.has(u) || extend.has(u) || (kept.has(u) && !chosen.has(u)) || toClone.has(u)) continue;
      if (!forward(u)) return false;
      // Recompute u too where possible, else keep it alive (paid once, however many read it).
      const c = new Set(clone), e = new Set(extend), r = new Set(reuse);
      if (plan(u, depth + 1, c, e, r)) {
        for (const x of c) clone.add(x);
        for (const x of e) extend.add(x);
        for (const x of r) reuse.add(x);
      } else extend.add(u);
    }
    return true;
  };
  // Symbolic dims are batch and sequence: rank them as 1024 elements each; biggest first.
  const candidates = [...saved].filter((v) => !pinned.has(v) && !v.isGraphOutput() && rank(v) >= minBytes);
  candidates.sort((a, b) => rank(b) - rank(a));
  let bytes = 0;
  const report: RecomputeReport['chosen'] = [];
  // Where each clone will be placed: before the first backward read of the first root needing it.
  const placedAt = new Map<Value, number>();
  for (const v of candidates) {
    if (opts.accept && !opts.accept(v)) continue;
    const clone = new Set<Value>(), extend = new Set<Value>(), reuse = new Set<Value>();
    if (!plan(v, 0, clone, extend, reuse)) continue;
    // Worth it only when what stays alive longer is much smaller than what is freed.
    const cost = [...extend].reduce((s, u) => s + rank(u), 0);
    if (cost * 4 > rank(v)) continue;
    // With projections, chains may reach back through the residual stream: a value whose clones
    // would move another value's clone chain earlier (to this value's first read) stays saved,
    // else one layer's recomputation drags every earlier layer's to the start of the backward.
    const at = firstRead(v);
    if (opts.projections && [...reuse].some((u) => placedAt.get(u)! > at)) continue;
    for (const u of clone) placedAt.set(u, Math.min(placedAt.get(u) ?? Infinity, at));
    chosen.add(v);
    report.push({ value: v, cloned: [...clone].filter((u) => !toClone.has(u)).map((u) => u.producer!) });
    for (const u of clone) toClone.add(u);
    for (const u of extend) kept.add(u);
    bytes += sizeBytes(v, 1) ?? 0;
  }
  // Clone in the order of each value's first backward read, so a clone shared by two chains is
  // always placed before both readers.
  const roots = [...chosen].sort((a, b) => firstRead(a) - firstRead(b));
  const clones = new Map<Value, Value>();
  let nodes = 0;
  const cloneOf = (v: Value, before: Node): Value => {
    if (!toClone.has(v) && !chosen.has(v)) return v;
    const have = clones.get(v);
    if (have) return have;
    const p = v.producer!;
    const inputs = p.inputs.map((u) => (u ? cloneOf(u, before) : null));
    const outputs = p.outputs.map((o) => g.createValue(`${o.name}.recompute`, o.type));
    const n = g.addNode(p.opType, inputs, outputs, { domain: p.domain, name: g.model.freshNodeName(`${p.name || p.opType}.recompute`), attrs: [...p.attributes.values()], before });
    n.extra = { ...p.extra, metadata_props: [{ key: 'ortfuse.rule', value: RECOMPUTE_TAG }] };
    nodes++;
    p.outputs.forEach((o, i) => clones.set(o, outputs[i]));
    return clones.get(v)!;
  };
  for (const v of roots) {
    const reads = backwardReads(v).sort((a, b) => order.get(a.node)! - order.get(b.node)!);
    const c = cloneOf(v, reads[0].node);
    for (const u of reads) u.node.setInput(u.index, c);
  }
  return { values: chosen.size, nodes, bytes, chosen: report, inOps };
}
