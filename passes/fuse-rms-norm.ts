/**
 * fuse-rms-norm — HF Qwen2RMSNorm, as exporters write it, becomes one op:
 *
 *   xs   = float(x)                                  (optional Cast: mixed precision)
 *   rstd = 1 / sqrt(mean(xs², axis=-1, keepdims) + eps)
 *   y    = weight * to_dtype_of_x(xs * rstd)         (optional Cast back)
 *
 * → ONNX RMSNormalization(x, weight, axis=-1, epsilon, stash_type=1) where the model imports
 * opset >= 23 (https://onnx.ai/onnx/operators/onnx__RMSNormalization.html: normalized value cast
 * back to X's type, then times Scale — the same computation), else ai.ortfuse.RMSNorm (same
 * attributes; custom-ops/rms-norm/schema.ts). Follows transformers' Qwen2RMSNorm.forward.
 *
 * Not fused: a reduction over another axis or with keepdims=0, eps added outside the Sqrt, an
 * exponent other than 2, a Mul by a tensor other than x, a weight that is not 1-D [D], a float16
 * computation without the upcast (fusing would change its precision), a Cast back to another
 * type than x's, and (the matcher's rule) any intermediate read outside the pattern.
 */
import { canUseRMSNormalization23, rmsNormalization23 } from '../custom-ops/rms-norm/function.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { Value } from '../src/ir/graph.js';
import { DataType, dataTypeName } from '../src/onnx/schema.js';
import { constantNumbers } from '../src/rewrite/constant.js';
import { attrJs } from '../src/rewrite/matcher.js';
import { c, named, or, p, shared, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { shapedRulePass } from './fusion-shapes.js';

const F = DataType.FLOAT;
const x = v('x');
const weight = v('weight');
const keepdims = { keepdims: (k: unknown) => (k ?? 1) === 1 };

// Cast(x, to=float) -> xs (kept when something else reads it), or x itself
const xs = or([named('upcast', shared(p.Cast(x, { to: F }))), x]);
// Pow(xs, 2) | Mul(xs, xs) -> xs²
const square = or([p.Pow(xs, c(2)), p.Mul(xs, xs)]);
// ReduceMean(xs², axes input) | ReduceMean(xs², axes attribute) -> mean (axes checked in `check`)
const mean = or([named('mean', p.ReduceMean(square, named('axes', c()), keepdims)), named('mean', p.ReduceMean(square, keepdims))]);
// Sqrt(Add(mean, eps)) -> std
const std = p.Sqrt(p.Add(mean, named('eps', c((t) => t.size === 1))));
// Reciprocal(std) | Div(1, std) -> rstd; Mul(xs, rstd) | Div(xs, std) -> normalized
const normed = or([p.Mul(xs, or([p.Reciprocal(std), p.Div(c(1), std)])), p.Div(xs, std)]);
// Cast(normalized, to=dtype of x) | normalized -> Mul(weight, ·) = y
const pattern = p.Mul(weight, or([named('downcast', p.Cast(normed)), normed]));

export interface RmsNormFacts {
  epsilon: number;
  /** Element type of the computation (stash_type): float32, or float64 for a float64 model. */
  stash: number;
  /** Emit ONNX RMSNormalization-23 instead of ai.ortfuse.RMSNorm. */
  onnx23: boolean;
}

const castTo = (v: Value | undefined): number | undefined => (v ? Number(attrJs(v.producer!.attributes.get('to'))) : undefined);

export const fuseRmsNorm = defineRule<RmsNormFacts>({
  name: 'fuse-rms-norm',
  pattern,
  check(m) {
    const { x, weight, eps, mean, upcast, downcast } = m.values;
    const xt = x.tensorType;
    const rank = xt?.shape?.length;
    const meanNode = mean.producer!;
    const axes = meanNode.inputs[1] ? constantNumbers(meanNode.inputs[1], 8) : (attrJs(meanNode.attributes.get('axes')) as number[] | undefined);
    if (!axes || axes.length !== 1) return no(`ReduceMean reduces over axes [${axes ?? 'all'}], not only the last one`, mean);
    if (axes[0] !== -1 && !(rank !== undefined && axes[0] === rank - 1))
      return no(`ReduceMean reduces over axis ${axes[0]}, not the last axis of a rank-${rank ?? '?'} input`, mean);
    const epsilon = constantNumbers(eps, 1)?.[0];
    if (epsilon === undefined || !(epsilon >= 0)) return no(`epsilon ${epsilon} is not a number >= 0`, eps);

    // Element types: the fused op computes in float32 (stash_type) and returns x's type.
    const T = xt?.elemType;
    let stash: number = F;
    if (upcast) {
      if (T === undefined) return no('the element type of x is unknown', x);
      const back = castTo(downcast) ?? F;
      if (back !== T) return no(`the normalized value is cast to ${dataTypeName(back)}, not back to x's ${dataTypeName(T)}`, downcast ?? x);
    } else {
      if (T !== undefined && T !== F && T !== DataType.DOUBLE)
        return no(`computed in ${dataTypeName(T)} without an upcast to float; fusing would change its precision`, x);
      if (T === DataType.DOUBLE) stash = DataType.DOUBLE;
      if (downcast && castTo(downcast) !== (T ?? F)) return no(`the normalized value is cast to ${dataTypeName(castTo(downcast)!)}, not x's type`, downcast);
    }

    const ws = weight.tensorType?.shape;
    if (!ws || ws.length !== 1) return no(`the scale is not a 1-D weight [D] (shape ${ws ? `[${ws}]` : 'unknown'})`, weight);
    const d = xt?.shape?.[xt.shape.length - 1];
    if (typeof d === 'number' && typeof ws[0] === 'number' && d !== ws[0]) return no(`weight [${ws[0]}] does not match the last dim ${d} of x`, weight);
    return ok({ epsilon, stash, onnx23: stash === F && canUseRMSNormalization23(m.graph.model) });
  },
  rewrite(b, m, f) {
    const { x, weight } = m.values;
    if (f.onnx23) return rmsNormalization23(b, x, weight, f.epsilon);
    return b.op.call('RMSNorm', [x, weight], { epsilon: { float: f.epsilon }, stash_type: f.stash }, { domain: ORTFUSE_DOMAIN })[0];
  },
});

/** The fuse-rms-norm pass (infers shapes first where the graph has none). */
export const fuseRmsNormPass = shapedRulePass('fuse-rms-norm', [fuseRmsNorm], ['ReduceMean'], ['RMSNorm', 'RMSNormalization']);
