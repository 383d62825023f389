/**
 * Gradients of the gathers: scatter-add of dy into zeros shaped like the data (repeated indices
 * accumulate, as an embedding's gradient must). No one-hot matrix is built.
 *   Gather(axis 0):  dx = ScatterND(0, indices[..., None], dy, reduction=add)
 *   Gather(axis k):  the same on data transposed so that axis k comes first, transposed back
 *   GatherElements:  dx = ScatterElements(0, indices, dy, axis, reduction=add)
 *   GatherND (batch_dims 0): dx = ScatterND(0, indices, dy, reduction=add)
 * Negative indices are normalised first (scatter ops need them in range on every backend).
 */
import type { Value } from '../../ir/graph.js';
import type { GradContext, GradFn, GradRule } from '../types.js';

const INT64 = 7;

function int64(g: GradContext, i: number): Value {
  return g.elemTypeX(i) === INT64 ? g.x(i) : g.op.Cast(g.x(i), { to: INT64 });
}

/** idx + dim where idx < 0 (dim broadcasts against idx). */
function normalise(g: GradContext, idx: Value, dim: Value): Value {
  return g.op.Where(g.op.Less(idx, g.ints(0)), g.op.Add(idx, dim), idx);
}

function needOpset16(g: GradContext): void {
  if (g.opset < 16) g.unsupported('scatter with reduction=add needs opset 16 or later');
}

const gatherGrad: GradFn = (g) => {
  needOpset16(g);
  const op = g.op;
  let axis = g.node.attrInt('axis', 0);
  const dim = op.Gather(g.shapeX(0), g.ints(axis), { axis: 0 });
  const idx = g.op.Unsqueeze(normalise(g, int64(g, 1), dim), g.ints([-1]));
  if (axis === 0) return op.ScatterND(g.zerosLikeX(0), idx, g.dy(), { reduction: 'add' });
  const r = g.rankX(0);
  const q = g.rankX(1);
  if (axis < 0) axis += r;
  // data axis first: perm = [axis, 0..axis-1, axis+1..r-1]; dy's matching layout moves the q index dims first.
  const perm = [axis, ...Array.from({ length: r }, (_, k) => k).filter((k) => k !== axis)];
  const dyPerm = [
    ...Array.from({ length: q }, (_, k) => axis + k),
    ...Array.from({ length: axis }, (_, k) => k),
    ...Array.from({ length: r - 1 - axis }, (_, k) => axis + q + k),
  ];
  const zeros = op.Expand(g.scalar(0, g.elemTypeX(0)), op.Gather(g.shapeX(0), g.ints(perm), { axis: 0 }));
  const scattered = op.ScatterND(zeros, idx, op.Transpose(g.dy(), { perm: dyPerm }), { reduction: 'add' });
  const inv = new Array<number>(r);
  perm.forEach((p, k) => (inv[p] = k));
  return op.Transpose(scattered, { perm: inv });
};

const gatherElementsGrad: GradFn = (g) => {
  needOpset16(g);
  const axis = g.node.attrInt('axis', 0);
  const dim = g.op.Gather(g.shapeX(0), g.ints(axis), { axis: 0 });
  const idx = normalise(g, int64(g, 1), dim);
  return g.op.ScatterElements(g.zerosLikeX(0), idx, g.dy(), { axis, reduction: 'add' });
};

const gatherNDGrad: GradFn = (g) => {
  needOpset16(g);
  if (g.node.attrInt('batch_dims', 0) !== 0) g.unsupported('GatherND with batch_dims > 0');
  const op = g.op;
  const idx0 = int64(g, 1);
  const k = op.Slice(g.shapeX(1), g.ints([-1]), g.ints([2 ** 53]));
  const dims = op.Slice(g.shapeX(0), g.ints([0]), k);
  return op.ScatterND(g.zerosLikeX(0), normalise(g, idx0, dims), g.dy(), { reduction: 'add' });
};

export const gatherRules: Record<string, GradRule> = {
  Gather: { save: { inputs: [1] }, grads: [gatherGrad] },
  GatherElements: { save: { inputs: [1] }, grads: [gatherElementsGrad] },
  GatherND: { save: { inputs: [1] }, grads: [gatherNDGrad] },
};
