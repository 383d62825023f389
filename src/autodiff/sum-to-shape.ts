/**
 * Reduce a broadcast gradient to the shape of the input it flows to (numpy broadcasting: leading
 * axes the input lacks, and axes where the input has size 1). Decided statically where the shapes
 * allow it; otherwise computed at runtime from Shape ops, so symbolic dims work:
 *   pad  = Size(Shape(g)) - Size(Shape(x));  sx' = Concat(ones[pad], Shape(x))
 *   axes = NonZero(sx' == 1);  out = Reshape(ReduceSum(g, axes, keepdims=1, noop_with_empty_axes=1), Shape(x))
 * (summing over an axis where g also has size 1 is harmless).
 */
import { DataType } from '../onnx/schema.js';
import type { Value } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/types.js';
import type { GradContext } from './types.js';

type Plan = { kind: 'same' } | { kind: 'static'; lead: number; axes: number[] } | { kind: 'dynamic' };

/** Static plan for reducing a gradient of shape `g` to shape `x` (undefined shapes → dynamic). */
export function planSumTo(g: Dim[] | undefined, x: Dim[] | undefined): Plan {
  if (!g || !x || x.length > g.length) return { kind: 'dynamic' };
  const lead = g.length - x.length;
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  for (let i = 0; i < x.length; i++) {
    const dx = x[i];
    const dg = g[lead + i];
    if (dx === 1) {
      if (dg !== 1) {
        if (dg === null) return { kind: 'dynamic' };
        axes.push(lead + i);
      }
    } else if (dx === null || dg === null) {
      return { kind: 'dynamic' };
    } else if (dx !== dg) {
      // Different symbols (or a symbol against a number): either equal at runtime, or x broadcasts.
      if (typeof dx === 'number') continue; // x's size is fixed and not 1: it cannot broadcast
      return { kind: 'dynamic' };
    }
  }
  return axes.length === 0 ? { kind: 'same' } : { kind: 'static', lead, axes };
}

/**
 * Sum `grad` (static shape `gShape` if known) down to a value of static shape `xShape`;
 * `xRuntimeShape` yields the runtime shape of the target when needed.
 */
export function sumToShape(ctx: GradContext, grad: Value, gShape: Dim[] | undefined, xShape: Dim[] | undefined, xRuntimeShape: () => Value): Value {
  const op = ctx.op;
  const plan = planSumTo(gShape, xShape);
  if (plan.kind === 'same') return grad;
  if (plan.kind === 'static') {
    let r = ctx.reduceSum(grad, plan.axes, true);
    if (plan.lead > 0) {
      const lead = Array.from({ length: plan.lead }, (_, i) => i);
      r = ctx.opset >= 13 ? op.Squeeze(r, ctx.ints(lead)) : op.Squeeze(r, { axes: lead });
    }
    return r;
  }
  if (ctx.opset < 13) ctx.unsupported('broadcast gradients with unknown shapes need opset 13 or later');
  const sx = xRuntimeShape();
  const pad = op.Sub(op.Size(op.Shape(grad)), op.Size(sx));
  const ones = op.ConstantOfShape(op.Unsqueeze(pad, ctx.ints([0])), { value: oneInt64 });
  const padded = op.Concat(ones, sx, { axis: 0 });
  const axes = op.Reshape(op.NonZero(op.Equal(padded, ctx.ints(1))), ctx.ints([-1]));
  const r = op.ReduceSum(grad, axes, { keepdims: 1, noop_with_empty_axes: 1 });
  return op.Reshape(r, sx);
}

const oneInt64 = Tensor.from(DataType.INT64, [1], [1n]);
