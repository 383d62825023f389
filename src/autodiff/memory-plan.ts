/**
 * A static estimate of a graph's activation memory: run the nodes in graph order, allocate each
 * output when its node runs and free it after its last reader, as a runtime with a per-tensor
 * allocator does (graph inputs and initializers not counted; graph outputs live to the end).
 * Used to compare training graphs (recomputation on/off, fused/unfused) without running them;
 * ONNX Runtime's real peak is higher (its order and arena differ), the ranking is what counts.
 */
import type { Graph, Node, Value } from '../ir/graph.js';
import { evalDim } from '../ir/infer/index.js';
import { DataType } from '../onnx/schema.js';

export interface MemoryPlan {
  /** Most bytes alive at once. */
  peakBytes: number;
  /** The node at which the peak is reached. */
  peakNode?: Node;
  /** Values alive at the peak, by producer op type and shape, largest first. */
  atPeak: { what: string; count: number; bytes: number }[];
  /** Values whose shape is not static (not counted). */
  unknown: number;
  /** The largest single value (bytes and a description). */
  largest: { bytes: number; what: string };
}

/** Bytes of a value, or undefined where its size is not known. */
export type SizeOf = (v: Value) => number | undefined;

/** Bytes of one element by ONNX data type (4 when not listed). */
export const ELEM_BYTES: Record<number, number> = {
  [DataType.DOUBLE]: 8, [DataType.INT64]: 8, [DataType.UINT64]: 8,
  [DataType.FLOAT16]: 2, [DataType.BFLOAT16]: 2, [DataType.INT16]: 2, [DataType.UINT16]: 2,
  [DataType.BOOL]: 1, [DataType.INT8]: 1, [DataType.UINT8]: 1,
};

/** Bytes of a statically shaped tensor value; undefined when its shape is not static. */
export function tensorBytes(v: Value): number | undefined {
  const t = v.tensorType;
  if (!t?.shape || t.shape.some((d) => typeof d !== 'number')) return undefined;
  return (t.shape as number[]).reduce((a, b) => a * b, ELEM_BYTES[t.elemType] ?? 4);
}

/** Dims of `v` with input_ids' symbolic dims bound to [batch, seq]; undefined where one stays unknown. */
export type DimsOf = (v: Value) => number[] | undefined;

/** Dims and bytes of `g`'s values at batch shape [batch, seq] (input_ids' symbolic dims bound). */
export function boundShapes(g: Graph, batch: number, seq: number): { dims: DimsOf; size: SizeOf } {
  const ids = g.inputs.find((v) => v.name === 'input_ids')?.tensorType?.shape ?? [];
  const bindings: Record<string, number> = {};
  if (typeof ids[0] === 'string') bindings[ids[0]] = batch;
  if (typeof ids[1] === 'string') bindings[ids[1]] = seq;
  const dims: DimsOf = (v) => {
    const shape = v.tensorType?.shape;
    if (!shape) return undefined;
    const out: number[] = [];
    for (const d of shape) {
      const x = evalDim(d, bindings);
      if (x === null) return undefined;
      out.push(x);
    }
    return out;
  };
  const size: SizeOf = (v) => dims(v)?.reduce((a, b) => a * b, ELEM_BYTES[v.tensorType!.elemType] ?? 4);
  return { dims, size };
}

/** Index of each value's last reader in `g`'s node order (subgraph reads count for their node). */
export function lastUses(g: Graph): Map<Value, number> {
  const last = new Map<Value, number>();
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) if (v) last.set(v, i);
    for (const sg of n.subgraphs()) for (const v of sg.outerReferences()) last.set(v, i);
  });
  return last;
}

/**
 * Peak live bytes of `g` run in node order (see the file header). `sizeOf` (default: static shapes)
 * may evaluate symbolic shapes; `last` = lastUses(g), when computed once for several sizes;
 * `opts.freeOutputs`: graph outputs consumed as soon as they are made (gradients applied at once);
 * `opts.workspace`: bytes a node holds only while it runs (a fused op's intermediates, ./types.ts
 * opWorkspace), counted at that node on top of its inputs and outputs.
 */
export function memoryPlan(g: Graph, sizeOf: SizeOf = tensorBytes, last = lastUses(g), opts: { freeOutputs?: (v: Value) => boolean; workspace?: (n: Node) => number; workspaceLargest?: (n: Node) => number } = {}): MemoryPlan {
  const nodes = g.nodes;
  // Outputs live to the end, except those the caller takes away as soon as they are made (after their last reader).
  const outputs = new Set(g.outputs.filter((v) => !opts.freeOutputs?.(v)));
  const alive = new Map<Value, number>();
  let live = 0, peak = 0, unknown = 0;
  let peakNode: Node | undefined;
  let snapshot: Value[] = [];
  let largest = { bytes: 0, what: '' };
  const free = (v: Value) => {
    const b = alive.get(v);
    if (b === undefined || outputs.has(v)) return;
    alive.delete(v);
    live -= b;
  };
  nodes.forEach((n, i) => {
    for (const o of n.outputs) {
      const b = sizeOf(o);
      if (b === undefined) { unknown++; continue; }
      alive.set(o, b);
      live += b;
      if (b > largest.bytes) largest = { bytes: b, what: `${n.opType} output '${o.name}'` };
    }
    const scratch = opts.workspaceLargest?.(n) ?? 0;
    if (scratch > largest.bytes) largest = { bytes: scratch, what: `a temporary of ${n.opType} '${n.name}'` };
    const during = live + (opts.workspace?.(n) ?? 0);
    if (during > peak) {
      peak = during;
      peakNode = n;
      snapshot = [...alive.keys()];
    }
    for (const v of n.inputs) if (v && last.get(v) === i) free(v);
    for (const o of n.outputs) if (!last.has(o)) free(o);
  });
  const groups = new Map<string, { what: string; count: number; bytes: number }>();
  for (const v of snapshot) {
    const what = `${v.producer?.opType ?? 'input'} [${v.tensorType?.shape?.join(',')}]${outputs.has(v) ? ' (output)' : ''}`;
    const e = groups.get(what) ?? { what, count: 0, bytes: 0 };
    e.count++;
    e.bytes += sizeOf(v) ?? 0;
    groups.set(what, e);
  }
  return { peakBytes: peak, peakNode, atPeak: [...groups.values()].sort((a, b) => b.bytes - a.bytes), unknown, largest };
}
