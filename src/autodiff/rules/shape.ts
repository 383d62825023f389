/**
 * Gradients of data-movement ops. Each is the adjoint of a linear map:
 *   Reshape/Flatten/Squeeze/Unsqueeze: dx = Reshape(dy, Shape(x))   Transpose: inverse permutation
 *   Expand: sum back to x's shape                                   Concat ↔ Slice, Split ↔ Concat
 *   Slice (step 1): zero-pad dy back to x's extent                  Pad (constant): Pad(dy, −pads)
 *   Trilu: Trilu(dy) with the same k                                Tile: not covered
 * Starts, ends and axes may be runtime values; pads are computed with Shape ops at runtime.
 */
import type { Value } from '../../ir/graph.js';
import type { GradContext, GradFn, GradRule } from '../types.js';

const reshapeBack: GradFn = (g) => g.op.Reshape(g.dy(), g.shapeX(0));

/** int64 view of an index-like input (Slice starts may be int32). */
function asInt64(g: GradContext, v: Value, elemType: number): Value {
  return elemType === 7 ? v : g.op.Cast(v, { to: 7 });
}

/** dy zero-padded by `before` / `after` (int64 1-D, one entry per axis in `axes`). */
function padAxes(g: GradContext, dy: Value, before: Value, after: Value, axes: Value): Value {
  const pads = g.op.Concat(before, after, { axis: 0 });
  if (g.opset >= 18) return g.op.Pad(dy, pads, null, axes);
  // Opset < 18: scatter the per-axis pads into a full-rank pads vector.
  const r = g.rankX(0);
  const rank = g.ints(r);
  const norm = g.op.Where(g.op.Less(axes, g.ints(0)), g.op.Add(axes, rank), axes);
  const idx = g.op.Concat(norm, g.op.Add(norm, rank), { axis: 0 });
  const full = g.op.ScatterElements(g.ints(new Array(2 * r).fill(0)), idx, pads, { axis: 0 });
  return g.op.Pad(dy, full);
}

const sliceGrad: GradFn = (g) => {
  const steps = (g.node.inputs[4] ? g.constX(4) : []) ?? g.unsupported('runtime Slice steps');
  if (steps.some((s) => s !== 1)) g.unsupported(`Slice with steps [${steps}] (only step 1 is differentiated)`);
  if (g.opset < 10) g.unsupported('Slice before opset 10');
  const op = g.op;
  const starts = asInt64(g, g.x(1), g.elemTypeX(1));
  const axes = g.node.inputs[3]
    ? asInt64(g, g.x(3), g.elemTypeX(3))
    : op.Range(g.ints(0), op.Size(starts), g.ints(1));
  const dims = op.Gather(g.shapeX(0), axes, { axis: 0 });
  const norm = op.Where(op.Less(starts, g.ints(0)), op.Add(starts, dims), starts);
  const begin = op.Min(op.Max(norm, g.ints(0)), dims);
  const out = op.Gather(g.shapeY(0), axes, { axis: 0 });
  const after = op.Sub(op.Sub(dims, begin), out);
  return padAxes(g, g.dy(), begin, after, axes);
};

const padGrad: GradFn = (g) => {
  const mode = g.node.attrString('mode', 'constant');
  if (mode !== 'constant') g.unsupported(`Pad mode '${mode}'`);
  if (g.opset < 11) return g.op.Pad(g.dy(), { pads: g.node.attrInts('pads').map((p) => -p) });
  const neg = g.op.Neg(g.x(1));
  return g.node.inputs[3] ? g.op.Pad(g.dy(), neg, null, g.x(3)) : g.op.Pad(g.dy(), neg);
};

/** Size of input `j` along `axis`, as int64 [1] (static when known). */
function sizeAlong(g: GradContext, j: number, axis: number): Value | number {
  const s = g.staticShapeX(j);
  if (s) {
    const d = s[axis < 0 ? s.length + axis : axis];
    if (typeof d === 'number') return d;
  }
  return g.op.Gather(g.shapeX(j), g.ints([axis]), { axis: 0 });
}

const concatGrad: GradFn = (g, i) => {
  const axis = g.node.attrInt('axis');
  let start: Value | number = 0;
  for (let j = 0; j < i; j++) {
    const d = sizeAlong(g, j, axis);
    start = typeof start === 'number' && typeof d === 'number' ? start + d
      : g.op.Add(typeof start === 'number' ? g.ints([start]) : start, typeof d === 'number' ? g.ints([d]) : d);
  }
  const len = sizeAlong(g, i, axis);
  const end = typeof start === 'number' && typeof len === 'number' ? start + len
    : g.op.Add(typeof start === 'number' ? g.ints([start]) : start, typeof len === 'number' ? g.ints([len]) : len);
  const asV = (v: Value | number) => (typeof v === 'number' ? g.ints([v]) : v);
  return g.op.Slice(g.dy(), asV(start), asV(end), g.ints([axis]));
};

const splitGrad: GradFn = (g) => {
  const parts = g.node.outputs.map((_, k) => g.dy(k));
  return g.op.Concat(...parts, { axis: g.node.attrInt('axis', 0) });
};

const transposeGrad: GradFn = (g) => {
  if (!g.node.attr('perm')) return g.op.Transpose(g.dy());
  const perm = g.node.attrInts('perm');
  const inv = new Array<number>(perm.length);
  perm.forEach((p, k) => (inv[p] = k));
  return g.op.Transpose(g.dy(), { perm: inv });
};

const triluGrad: GradFn = (g) => {
  const upper = g.node.attrInt('upper', 1);
  return g.node.inputs[1] ? g.op.Trilu(g.dy(), g.x(1), { upper }) : g.op.Trilu(g.dy(), { upper });
};

export const shapeRules: Record<string, GradRule> = {
  Reshape: { save: {}, grads: [reshapeBack] },
  Flatten: { save: {}, grads: [reshapeBack] },
  Squeeze: { save: {}, grads: [reshapeBack] },
  Unsqueeze: { save: {}, grads: [reshapeBack] },
  Transpose: { save: {}, grads: [transposeGrad] },
  Expand: { save: {}, grads: [(g, i) => g.sumToX(g.dy(), i)] },
  Concat: { save: {}, grads: [], variadic: concatGrad },
  Split: { save: {}, grads: [splitGrad] },
  Slice: { save: { inputs: [1, 3] }, grads: [sliceGrad] },
  Pad: { save: { inputs: [1, 3] }, grads: [padGrad] },
  Trilu: { save: { inputs: [1] }, grads: [triluGrad] },
};
