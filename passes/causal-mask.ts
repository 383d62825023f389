/**
 * What fuse-causal-attention needs to prove before it drops a model's mask and the plumbing around
 * its keys: the values a small subgraph computes at chosen input shapes, evaluated in JS
 * (src/rewrite/eval.ts, ORT's semantics) with the shapes of chosen values substituted.
 *
 * `causalMaskProblem` accepts an additive mask only if (1) it depends on the graph's inputs through
 * their shapes alone (no attention_mask, no position_ids input), (2) it holds at most one ordering
 * comparison (a sliding window needs a second one, and would look causal at short lengths), and
 * (3) evaluated at several batch sizes and lengths (the model's own, where static), it is 0 at
 * keys u ≤ t and at most -1e30 (float32's lowest, or -inf) at u > t, broadcast over the heads.
 */
import type { Node, Value } from '../src/ir/graph.js';
import type { Tensor } from '../src/ir/tensor.js';
import type { Dim } from '../src/ir/types.js';
import { constantTensor } from '../src/rewrite/constant.js';
import { evalNode, FOLD_LIMIT } from '../src/rewrite/eval.js';

/** Concrete shapes of some values (the rest are evaluated); undefined = not known. */
export type ShapeOf = (v: Value) => number[] | undefined;

/** The tensor `v` holds when the values `shapeOf` knows have those shapes, or undefined (data-dependent, unsupported op, too large). */
export function evalWithShapes(v: Value, shapeOf: ShapeOf, memo = new Map<Value, Tensor | undefined>()): Tensor | undefined {
  if (memo.has(v)) return memo.get(v);
  memo.set(v, undefined); // (a cycle cannot occur in a checked graph; this also bounds the walk)
  const r = evalProducer(v, shapeOf, memo);
  memo.set(v, r);
  return r;
}

function evalProducer(v: Value, shapeOf: ShapeOf, memo: Map<Value, Tensor | undefined>): Tensor | undefined {
  const c = constantTensor(v);
  if (c) return c.size <= FOLD_LIMIT ? c : undefined;
  const n = v.producer;
  if (!n || (n.domain !== '' && n.domain !== 'ai.onnx')) return undefined;
  if (n.opType === 'Shape' || n.opType === 'Size') {
    const x = n.inputs[0];
    const dims = x ? shapeOf(x) ?? evalWithShapes(x, shapeOf, memo)?.dims : undefined;
    return dims ? evalNode(n, [], dims)?.[0] : undefined;
  }
  const ins: (Tensor | undefined)[] = [];
  for (const x of n.inputs) {
    if (!x) { ins.push(undefined); continue; }
    const t = evalWithShapes(x, shapeOf, memo);
    if (!t) return undefined;
    ins.push(t);
  }
  return evalNode(n, ins)?.[n.outputs.indexOf(v)];
}

/** The nodes `v` is computed from, not looking through Shape/Size (their input's data is not read). */
export function dataCone(v: Value): Node[] {
  const seen = new Set<Node>();
  const stack = [v];
  while (stack.length) {
    const n = stack.pop()!.producer;
    if (!n || seen.has(n)) continue;
    seen.add(n);
    if (n.opType !== 'Shape' && n.opType !== 'Size') for (const x of n.inputs) if (x) stack.push(x);
  }
  return [...seen];
}

const ORDERINGS = new Set(['Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual']);

/** (batch, length) pairs the mask is evaluated at when they are symbolic. */
const TRIALS: [number, number][] = [[1, 1], [2, 2], [1, 5], [3, 7], [2, 11]];

/**
 * Why `mask` (added to scores [B, H, T, T]) is not exactly the causal mask, or undefined when it is.
 * `batch` and `len` are the scores' B and T dims (numbers or symbols of the graph inputs' dims).
 */
export function causalMaskProblem(mask: Value, batch: Dim, len: Dim): string | undefined {
  const orderings = dataCone(mask).filter((n) => ORDERINGS.has(n.opType));
  if (orderings.length > 1) return `the mask compares positions ${orderings.length} times (${orderings.map((n) => n.label).join(', ')}); only a plain causal mask (one comparison) is fused`;
  if (len === null || batch === null) return 'the batch size or sequence length of the scores is unknown';
  const graph = mask.graph;
  const inputs = graph.inputs.filter((x) => !x.initializer);
  for (const [b, t] of TRIALS) {
    const size = (d: Dim): number | undefined => (typeof d === 'number' ? d : d === len ? t : d === batch ? b : typeof d === 'string' && /^[A-Za-z_][\w.]*$/.test(d) ? 3 : undefined);
    const T = size(len), B = size(batch);
    if (T === undefined || B === undefined) return `the sequence length '${len}' or batch '${batch}' is not a dim of the graph inputs`;
    const shapeOf: ShapeOf = (x) => {
      if (!inputs.includes(x)) return undefined;
      const s = x.tensorType?.shape?.map(size);
      return s && s.every((d): d is number => d !== undefined) ? s : undefined;
    };
    const m = evalWithShapes(mask, shapeOf);
    if (!m) return 'the mask is not a function of the input shapes alone (it reads input data, e.g. an attention_mask or position_ids input, or ops ortfuse cannot evaluate)';
    const why = notCausal(m, B, T);
    if (why) return `at batch ${B} and length ${T} the mask ${why}`;
    if (typeof len === 'number' && typeof batch === 'number') break; // static: that was the model's own shape
  }
  return undefined;
}

function notCausal(m: Tensor, b: number, t: number): string | undefined {
  const d = m.dims;
  if (d.length > 4) return `has rank ${d.length}`;
  const [d0, d1, d2, d3] = [...Array(4 - d.length).fill(1), ...d] as number[];
  if (d3 !== t || d2 !== t || d1 !== 1 || (d0 !== 1 && d0 !== b)) return `has shape [${d}], not [${b}|1, 1, ${t}, ${t}]`;
  const vals = m.toNumbers();
  for (let bi = 0; bi < d0; bi++)
    for (let i = 0; i < t; i++)
      for (let j = 0; j < t; j++) {
        const x = vals[(bi * t + i) * t + j];
        if (j <= i ? x !== 0 : !(x <= -1e30)) return `is ${x} at query ${i}, key ${j} (batch row ${bi}), not ${j <= i ? 0 : '<= -1e30'}`;
      }
  return undefined;
}
