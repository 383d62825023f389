/**
 * Splitting a training-step graph into stages for the webgpu backend's per-op policy: the fused
 * ops whose policy is 'kernel' (those whose record carries a WebGPU kernel: src/ops/kernel.ts) run
 * as our WGSL kernels, everything else in ONNX Runtime segments between them:
 *
 *   ORT segment 0 → kernel group 0 → ORT segment 1 → kernel group 1 → … → ORT segment S
 *
 * A value made by segment k is ready for kernel group k and segment k's later nodes; one made by
 * kernel group k for later kernels of group k and for segment k+1. Stages are counted on the
 * earliest schedule (so kernels of the same depth share one group and a Qwen2 layer costs about 4
 * segments forward and 4 backward, not one per node); then each node moves to the latest stage
 * its readers allow (recomputed activations are made where the backward reads them), except nodes
 * that feed only graph outputs (weight gradients), which stay early, and nodes computed from the
 * host-fed batch alone for our kernels (input_ids' and labels' index plumbing), which stay in the
 * first segment. Nodes computed from constants alone are copied into every segment that reads
 * them instead of crossing stages.
 *
 * A segment is a model with exactly the inputs it reads (parameters, batch, values of earlier
 * stages) and the outputs that later stages or the trainer read; it passes the IR checker. Values
 * cross by name, as gpu-buffer tensors (./steps.ts).
 */
import { fail } from '../../errors.js';
import { check } from '../../ir/checker.js';
import { modelFromProto } from '../../ir/from-proto.js';
import type { Model, Node, Value } from '../../ir/graph.js';
import { modelToProto, typeToProto } from '../../ir/to-proto.js';
import type { Tensor } from '../../ir/tensor.js';
import { isSorted, nodeDependencies as allDependencies, toposort } from '../../ir/toposort.js';
import { toLong } from '../../ir/long.js';
import type { KernelCall } from '../../ops/kernel.js';
import type { FusedOpRecord } from '../../ops/record.js';
import { resolvePolicy, type Choice, type OpPolicy } from './policy.js';
import { glueCalls, GLUE_KERNELS, GLUE_POLICY, glueRead } from './glue.js';
import { LOSS_SCALE } from '../../autodiff/names.js';

export type { KernelCall } from '../../ops/kernel.js';

/** A kernel's name in the plan (WebGpuKernel.name: 'flce', 'rmsNorm', 'rmsNormGrad', …). */
export type KernelOp = string;

export type Step =
  | { kind: 'ort'; segment: number }
  | { kind: 'kernel'; call: KernelCall };

/**
 * How a step runs, JSON-serialisable (the page ships it in its manifest). Steps in order; a
 * kernel step's commands are submitted before the next 'ort' step (or at the end).
 */
export interface StagePlan {
  steps: Step[];
  /** For every value that crosses steps: the index of its last reading step (−1 = never read). */
  lastUse: Record<string, number>;
  /** The training graph's outputs (loss, grad.<param>): kept until the step's release(). */
  outputs: string[];
  /** For each graph input (parameters, batch): the index of its last reading step. */
  inputLastUse?: Record<string, number>;
  /** ORT segments in order (their index in `segments`). */
  segmentCount: number;
  /**
   * Values a segment would return through a Reshape-like node (Reshape, Squeeze, Unsqueeze,
   * Flatten, Identity): the segment returns the node's source instead (`of`, a value it makes or
   * reads) and the runner views that buffer with `dims` after step `at`. ORT would copy such an
   * output into its own buffer with a buffer copy, which a captured session does not replay
   * (./capture.ts); the view costs nothing.
   */
  aliases?: Record<string, ValueAlias>;
  /**
   * Segments that read nothing of the GPU's — only the batch (input_ids, labels) and constants:
   * index arithmetic and tables, left in ORT once the embedding Gather is our kernel. They run on
   * ORT's CPU (wasm) EP: a CPU run costs far less host time than a WebGPU one, and their values,
   * small, are written to the GPU when a kernel reads them (./steps.ts). With every op and the glue
   * on our kernels, the step then makes no ORT WebGPU run at all.
   */
  hostSegments?: number[];
}

export interface ValueAlias {
  of: string;
  dims: number[];
  at: number;
}

const RESHAPES = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);

export interface StagedGraph {
  plan: StagePlan;
  segments: Model[];
}

const ORTFUSE = 'ai.ortfuse';

/**
 * The kernel calls of `train` under `policy` (graph order), with the nodes they replace, and the
 * nodes a call absorbs (WebGpuKernel.absorbs) with the node whose call computes them.
 */
function kernelCalls(train: Model, policy: Record<string, Choice>, ops: readonly FusedOpRecord[]): { calls: Map<Node, KernelCall>; absorbedBy: Map<Node, Node> } {
  const g = train.graph;
  const kernels = new Map(ops.flatMap((o) => (o.webgpu ? [[o.schema.name, o.webgpu] as const] : [])));
  const calls = new Map<Node, KernelCall>();
  const absorbedBy = new Map<Node, Node>();
  for (const n of g.nodes) {
    if (n.domain !== ORTFUSE) continue;
    const rule = kernels.get(n.opType);
    if (!rule || policy[rule.policy.key] !== 'kernel') continue;
    const r = rule.read(n);
    if ('why' in r) fail('unsupported', `webgpu kernel policy: ${n.label} cannot run as our ${rule.name} kernel: ${r.why} (run ${rule.policy.key} in ORT instead)`);
    const used = (v: Value) => (v.useCount > 0 || v.isGraphOutput() ? v.name : null);
    const absorbed = rule.absorbs?.(n) ?? [];
    for (const m of absorbed) absorbedBy.set(m, n);
    const outputs = [n, ...absorbed].flatMap((m) => m.outputs.map(used));
    calls.set(n, { op: rule.name, node: n.label, inputs: n.inputs.map((v) => v?.name ?? null), outputs, attrs: r.attrs });
  }
  for (const m of absorbedBy.keys()) calls.delete(m); // a node both absorbed and a call of its own: absorbed
  if (policy[GLUE_POLICY.key] === 'kernel') glueCalls(g, calls, absorbedBy, HOST_FED);
  return { calls, absorbedBy };
}

const GLUE_NAMES = new Set(GLUE_KERNELS.keys());

/** Graph inputs fed from the host each step. */
const HOST_FED = new Set(['input_ids', 'labels', LOSS_SCALE]);
/** Those fed as host tensors (the loss scale is a GPU buffer). */
const HOST_BATCH = new Set(['input_ids', 'labels']);

/** Embedded tensors for segment protos (saveBytes embeds everything anyway). */
const sink = (t: Tensor, name: string): any =>
  (!t.external && t.proto && t.proto.name === name ? t.proto : { dims: t.dims.map(toLong), data_type: t.dtype, name, raw_data: t.bytes() });

/**
 * The stages of `train` under `policy`, for the kernels of `ops` (FUSED_OPS of
 * custom-ops/registry.ts); undefined when no node runs as our kernel (then one ORT session runs
 * the whole graph). Throws, naming the node or value, when the graph cannot be cut.
 */
export function splitStages(train: Model, policyIn: OpPolicy, ops: readonly FusedOpRecord[]): StagedGraph | undefined {
  const policy = resolvePolicy(policyIn, ops);
  const g = train.graph;
  if (!isSorted(g)) toposort(g);
  const { calls, absorbedBy } = kernelCalls(train, policy, ops);
  if (calls.size === 0) return undefined;
  const absorbed = new Set(absorbedBy.keys());
  // What a node reads: a glue call reads only some inputs (a view's data, not its shape input, read
  // at plan time; a scatter's indices and updates, not its zeros: their Expand is then dead).
  const glue = new Set([...calls].filter(([, c]) => GLUE_NAMES.has(c.op)).map(([n]) => n));
  const nodeDependencies = (n: Node): Value[] => (glue.has(n) ? glueRead(n).filter((v): v is Value => !!v) : allDependencies(n));
  const absorbedOf = (n: Node) => [...absorbedBy].filter(([, owner]) => owner === n).map(([m]) => m);

  // Live nodes: what the graph outputs depend on (absorbed nodes are replaced by their kernel).
  const live = new Set<Node>();
  const liveValues = new Set<Value>(g.outputs);
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (absorbed.has(n)) continue;
    const outs = calls.has(n) ? [n, ...absorbedOf(n)].flatMap((m) => m.outputs) : n.outputs;
    if (!outs.some((o) => liveValues.has(o))) continue;
    live.add(n);
    for (const v of nodeDependencies(n)) liveValues.add(v);
  }
  // Producer of each value (a kernel node also produces the outputs of the nodes it absorbs).
  const producer = new Map<Value, Node>();
  for (const n of g.nodes) if (live.has(n)) for (const o of n.outputs) producer.set(o, n);
  for (const [m, owner] of absorbedBy) for (const o of m.outputs) producer.set(o, owner);

  // Constant-only nodes: copied into each segment that reads them (those whose values a kernel or
  // the trainer reads are ordinary nodes of segment 0, whose values cross from there).
  const exported = new Set<Value>(g.outputs);
  for (const n of calls.keys()) for (const v of nodeDependencies(n)) exported.add(v);
  const constant = new Set<Node>();
  for (const n of g.nodes)
    if (live.has(n) && !calls.has(n) && !n.outputs.some((o) => exported.has(o))
      && nodeDependencies(n).every((v) => v.initializer || (producer.has(v) && constant.has(producer.get(v)!))))
      constant.add(n);

  // Earliest stage: ORT nodes in segment `stage`, kernels in group `stage` (after that segment).
  const stage = new Map<Node, number>();
  for (const n of g.nodes) {
    if (!live.has(n)) continue;
    const isKernel = calls.has(n);
    let s = 0;
    for (const v of nodeDependencies(n)) {
      const p = producer.get(v);
      if (!p || constant.has(p)) {
        if (!v.initializer && !v.isGraphInput() && !p) fail('invalid', `stage split: ${n.label} reads '${v.name}', which nothing computes`);
        continue;
      }
      const ps = stage.get(p)!;
      s = Math.max(s, calls.has(p) && !isKernel ? ps + 1 : ps);
    }
    stage.set(n, s);
  }
  const last = Math.max(0, ...[...stage.entries()].filter(([n]) => !constant.has(n)).map(([, s]) => s));
  // Then as late as the readers allow (recomputed forward values are made where the backward
  // needs them, not kept from the forward); nodes that only feed graph outputs stay early, so
  // their inputs are freed early. The stage count is that of the earliest schedule.
  const readers = new Map<Node, Node[]>();
  for (const n of g.nodes)
    if (live.has(n) && !constant.has(n))
      for (const v of nodeDependencies(n)) { const p = producer.get(v); if (p) readers.set(p, [...(readers.get(p) ?? []), n]); }
  // Index plumbing of the batch for our kernels: in the first ORT segment (batchFedForKernels).
  const early = batchFedForKernels(g.nodes.filter((n) => live.has(n) && !calls.has(n) && !constant.has(n)), nodeDependencies, (v) => {
    const p = producer.get(v);
    return p && constant.has(p) ? undefined : p;
  }, (n) => readers.get(n) ?? [], (n) => calls.has(n));
  const lateBound = (n: Node) => {
    let bound = Infinity;
    for (const r of readers.get(n) ?? []) bound = Math.min(bound, calls.has(n) && !calls.has(r) ? stage.get(r)! - 1 : stage.get(r)!);
    return bound;
  };
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (!live.has(n) || constant.has(n) || early.has(n)) continue;
    const bound = lateBound(n);
    if (bound < Infinity) stage.set(n, bound);
  }
  // The first segment the other ORT nodes make (0 in a step that starts with its embedding): these
  // nodes never open one of their own.
  const firstOrt = Math.min(...g.nodes.filter((n) => live.has(n) && !calls.has(n) && !constant.has(n) && !early.has(n)).map((n) => stage.get(n)!));
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const s = early.has(g.nodes[k]) ? Math.min(firstOrt, lateBound(g.nodes[k])) : Infinity;
    if (s < Infinity) stage.set(g.nodes[k], s);
  }

  // Steps in order; each value's reading steps.
  const steps: Step[] = [];
  const stepOf = new Map<Node, number>();
  const segNodes: Node[][] = [];
  for (let s = 0; s <= last; s++) {
    const ort = g.nodes.filter((n) => live.has(n) && !calls.has(n) && !constant.has(n) && stage.get(n) === s);
    if (ort.length) {
      const idx = steps.push({ kind: 'ort', segment: segNodes.length }) - 1;
      segNodes.push(ort);
      for (const n of ort) stepOf.set(n, idx);
    }
    for (const n of g.nodes)
      if (calls.has(n) && stage.get(n) === s) stepOf.set(n, steps.push({ kind: 'kernel', call: calls.get(n)! }) - 1);
  }
  const lastUse: Record<string, number> = {};
  const inputLastUse: Record<string, number> = {};
  const crossing = new Set<Value>();
  for (const n of g.nodes) {
    const at = stepOf.get(n);
    if (at === undefined) continue;
    for (const v of nodeDependencies(n)) {
      const p = producer.get(v);
      if (v.isGraphInput()) inputLastUse[v.name] = Math.max(inputLastUse[v.name] ?? -1, at);
      if (!p || constant.has(p) || stepOf.get(p) === at) continue;
      crossing.add(v);
      lastUse[v.name] = Math.max(lastUse[v.name] ?? -1, at);
    }
  }
  for (const v of g.outputs) {
    if (!producer.get(v)) fail('unsupported', `stage split: graph output '${v.name}' is not computed by any node`);
    crossing.add(v);
  }
  // Kernel outputs nobody reads are released right after their kernel.
  const outNames = new Set(g.outputs.map((v) => v.name));
  for (const [n, c] of calls) for (const o of c.outputs) if (o && !(o in lastUse) && !outNames.has(o)) lastUse[o] = stepOf.get(n)!;

  const full = modelToProto(train, sink);
  const protoOf = new Map<Node, any>();
  g.nodes.forEach((n, i) => protoOf.set(n, full.graph.node[i]));
  const valueInfo = new Map<string, any>((full.graph.value_info ?? []).map((vi: any) => [vi.name, vi]));
  const inits = new Map<string, any>((full.graph.initializer ?? []).map((t: any) => [t.name, t]));
  const fns = new Map<string, any>((full.functions ?? []).map((f: any) => [`${f.domain ?? ''}::${f.name}`, f]));

  const aliases: Record<string, ValueAlias> = {};
  const hostSegments: number[] = [];
  const segments = segNodes.map((nodes, k) => {
    const own = new Set(nodes);
    // Constant nodes this segment reads, copied in (transitively).
    const body = new Set<Node>(own);
    const pull = (n: Node) => {
      for (const v of nodeDependencies(n)) {
        const p = producer.get(v);
        if (p && constant.has(p) && !body.has(p)) { body.add(p); pull(p); }
      }
    };
    for (const n of [...body]) pull(n);
    const order = g.nodes.filter((n) => body.has(n));
    const made = new Set<Value>(order.flatMap((n) => n.outputs));
    const inputs: Value[] = [];
    const initializers = new Set<string>();
    for (const n of order)
      for (const v of nodeDependencies(n)) {
        if (made.has(v) || inputs.includes(v)) continue;
        if (v.initializer) initializers.add(v.name);
        else inputs.push(v);
      }
    const at = steps.findIndex((st) => st.kind === 'ort' && st.segment === k);
    const host = inputs.every((v) => HOST_BATCH.has(v.name));
    if (host) hostSegments.push(k);
    const outputs: Value[] = [];
    for (const v of order.filter((n) => own.has(n)).flatMap((n) => n.outputs).filter((x) => crossing.has(x))) {
      // A host segment's outputs are host tensors: returned as they are (no views of them).
      const root = host ? undefined : reshapeSource(v, own, producer);
      if (!root) {
        if (!outputs.includes(v)) outputs.push(v);
        continue;
      }
      aliases[v.name] = { of: root.name, dims: v.tensorType!.shape as number[], at };
      if (made.has(root) && !outputs.includes(root)) outputs.push(root);
      lastUse[root.name] ??= at;
    }
    for (const v of [...inputs, ...outputs])
      if (!v.type) fail('unsupported', `stage split: cannot cut at '${v.name}' (${producer.get(v)?.label ?? 'graph input'}): its type is unknown`);
    const called = new Set<string>();
    const call = (ps: any[]) => {
      for (const p of ps) {
        const key = `${p.domain ?? ''}::${p.op_type}`;
        const f = fns.get(key);
        if (f && !called.has(key)) { called.add(key); call(f.node ?? []); }
        for (const a of p.attribute ?? []) for (const sg of [a.g, ...(a.graphs ?? [])]) if (sg) call(sg.node ?? []);
      }
    };
    const nodeProtos = order.map((n) => protoOf.get(n));
    call(nodeProtos);
    const proto = {
      ...full,
      graph: {
        name: `segment_${k}`,
        node: nodeProtos,
        input: inputs.map((v) => ({ name: v.name, type: typeToProto(v.type!) })),
        output: outputs.map((v) => ({ name: v.name, type: typeToProto(v.type!) })),
        initializer: [...initializers].map((n) => inits.get(n)),
        value_info: [...made].filter((v) => !outputs.includes(v) && valueInfo.has(v.name)).map((v) => valueInfo.get(v.name)),
      },
      functions: (full.functions ?? []).filter((f: any) => called.has(`${f.domain ?? ''}::${f.name}`)),
    };
    const m = modelFromProto(proto, { source: `segment ${k}` });
    check(m, `stage split: segment ${k}`);
    return m;
  });
  // Outputs of segments the plan reads must all be declared.
  const declared = new Set([...segments.flatMap((m) => m.graph.outputs.map((v) => v.name)), ...Object.keys(aliases)]);
  for (const [n, c] of calls) for (const v of c.inputs) {
    if (!v) continue;
    const val = n.graph.findValue(v);
    if (val && producer.has(val) && !calls.has(producer.get(val)!) && !declared.has(v))
      fail('invalid', `stage split: ${c.node} reads '${v}', which no segment returns`);
  }
  return { plan: { steps, lastUse, outputs: g.outputs.map((v) => v.name), inputLastUse, segmentCount: segments.length, aliases, ...(hostSegments.length ? { hostSegments } : {}) }, segments };
}

/**
 * Of the ORT nodes `ort` (graph order), those computed from the host-fed batch and constants alone
 * whose values go to our kernels only (the embedding gradient's index normalisation on input_ids,
 * read by the glue scatter; the labels' shift, read by linear-CE): they stay in the first ORT
 * segment. As late as their readers allow, they could open a segment of their own just before the
 * kernel (the scatter is the step's last), and a later segment that reads input_ids cannot be
 * captured (./training-spec.ts capturable). Their values are small index tensors (8 bytes a
 * token), which cross to the kernel from there as they would from any segment. They are taken by
 * connected groups: a group with a value that an ORT node reads moves with its readers, so that no
 * value crosses segments for this. `producer` is undefined for graph inputs and constants.
 */
function batchFedForKernels(ort: readonly Node[], deps: (n: Node) => Value[], producer: (v: Value) => Node | undefined, readers: (n: Node) => Node[], isKernel: (n: Node) => boolean): Set<Node> {
  const fed = new Set<Node>();
  for (const n of ort)
    if (deps(n).every((v) => { const p = producer(v); return p ? fed.has(p) : v.initializer || HOST_FED.has(v.name) || !v.isGraphInput(); }))
      fed.add(n);
  const early = new Set<Node>();
  const seen = new Set<Node>();
  for (const n of fed) {
    if (seen.has(n)) continue;
    const group: Node[] = [];
    for (const todo = [n]; todo.length;) {
      const m = todo.pop()!;
      if (seen.has(m)) continue;
      seen.add(m);
      group.push(m);
      for (const v of deps(m)) { const p = producer(v); if (p && fed.has(p)) todo.push(p); }
      for (const r of readers(m)) if (fed.has(r)) todo.push(r);
    }
    if (group.every((m) => readers(m).every((r) => isKernel(r) || fed.has(r)))) for (const m of group) early.add(m);
  }
  return early;
}

/**
 * The value a segment output `v` views when a chain of Reshape-like nodes of the segment (`own`)
 * makes it from a computed value or a segment input; undefined when `v` is not made so, its shape
 * is not static, or the chain starts at a constant.
 */
function reshapeSource(v: Value, own: ReadonlySet<Node>, producer: ReadonlyMap<Value, Node>): Value | undefined {
  const isReshape = (n: Node | undefined): n is Node => !!n && own.has(n) && (n.domain ?? '') === '' && RESHAPES.has(n.opType);
  if (!isReshape(producer.get(v)) || !v.tensorType?.shape?.every((d) => typeof d === 'number')) return undefined;
  let src = producer.get(v)!.inputs[0]!;
  while (isReshape(producer.get(src))) src = producer.get(src)!.inputs[0]!;
  return src.initializer || !src.type ? undefined : src;
}
