/**
 * fuse-linear — a projection by a parameter becomes one op, after every other fusion:
 *
 *   Add(MatMul(x, Transpose(W, [1, 0])), b)   →   ai.ortfuse.Linear(x, W, b)                (trans_b = 1)
 *   Add(MatMul(x, W'), b)                     →   ai.ortfuse.Linear(x, W', b, trans_b = 0)
 *
 * and the same without the Add (no bias). W [N, K] is nn.Linear's weight read through the
 * Transpose the torch export writes (a Transpose read elsewhere stays); W' [K, N] is a weight the
 * exporter stored transposed (default dynamo exports fold Transpose(W) into an initializer `val_N`;
 * the trainers adopt it back to W + Transpose first, src/params/adopt.ts, so the op still trains
 * the torch parameter); b [N]. Op in custom-ops/linear/schema.ts.
 *
 * Only parameters: the weight (and the bias) must be float initializers, the weight 2-D with static
 * dims, x of rank >= 2, all of one element type. Left alone: MatMuls of activations (attention's
 * q·kᵀ and probs·v: no initializer), the lm_head (its weight is FusedLinearCrossEntropy's: the
 * logits MatMul, when kept, stays a MatMul), and whatever the rules before it took — it runs last
 * of the fusions (src/pipeline.ts), so in a Qwen2 it takes each layer's q, k, v (with bias) and o
 * projections; the MLP's belong to SwiGLUMLP when fuse-swiglu-mlp runs, else they become Linear too.
 *
 * Off by default (`fusionPipeline({ linear: true })`, `--fuse-linear`) until measured on the H200.
 */
import type { Value } from '../src/ir/graph.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { DataType } from '../src/onnx/schema.js';
import { formatShape } from '../src/ir/types.js';
import { or, p, shared, v, type PValue } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { shapedRulePass } from './fusion-shapes.js';

export const NAME = 'fuse-linear';

const FLOATS: readonly number[] = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16, DataType.DOUBLE];

const x = v('x');

/** x · Wᵀ (torch's Transpose of W [N, K]) or x · W' (W' [K, N] stored transposed). */
const weight: PValue = or([
  shared(p.Transpose(v('w'), { perm: [1, 0] })), // MatMul(x, Transpose(W)) -> trans_b = 1
  v('w_t'), // MatMul(x, W') -> trans_b = 0
]);

const product = p.MatMul(x, weight);

interface LinearFacts {
  w: Value;
  transB: 0 | 1;
  bias?: Value;
}

export const fuseLinear = defineRule<LinearFacts>({
  name: NAME,
  pattern: [
    p.Add(product, v('b')), // Add(MatMul(x, W), b) -> Linear(x, W, b)
    product, // MatMul(x, W) -> Linear(x, W)
  ],
  check(m) {
    const transB = m.values.w ? 1 : 0;
    const w = m.values.w ?? m.values.w_t;
    if (!w.initializer) return no(`the weight '${w.name}' is not an initializer (not a parameter)`, w);
    const s = w.tensorType?.shape;
    if (!s || s.length !== 2 || typeof s[0] !== 'number' || typeof s[1] !== 'number') return no(`the weight ${formatShape(s)} is not 2-D with static dims`, w);
    const elem = w.tensorType?.elemType;
    if (!elem || !FLOATS.includes(elem)) return no(`the weight '${w.name}' is not floating point`, w);
    const flce = w.uses().find((u) => u.node.domain === ORTFUSE_DOMAIN && u.node.opType.startsWith('FusedLinearCrossEntropy'));
    if (flce) return no(`the weight '${w.name}' is the lm_head's, read by ${flce.node.label}`, w);
    const [n, k] = transB ? s : [s[1], s[0]];
    const xs = m.values.x.tensorType?.shape;
    if (!xs || xs.length < 2) return no(`x ${formatShape(xs)} is not of rank >= 2 ([..., ${k}])`, m.values.x);
    const xk = xs[xs.length - 1];
    if (xk !== k && xk !== null && typeof xk === 'number') return no(`x ${formatShape(xs)} and the weight ${formatShape(s)} disagree on K`, m.values.x);
    if (m.values.x.tensorType?.elemType !== elem) return no('x and the weight differ in element type', m.values.x);
    const b = m.values.b;
    if (!b) return ok({ w, transB });
    const bs = b.tensorType?.shape;
    if (!b.initializer || !bs || bs.length !== 1 || bs[0] !== n || b.tensorType?.elemType !== elem)
      return no(`the added '${b.name}' ${formatShape(bs)} is not a bias initializer [${n}] of the weight's type`, b);
    return ok({ w, transB, bias: b });
  },
  rewrite(b, m, f) {
    const attrs = f.transB ? {} : { trans_b: 0 };
    return b.op.call('Linear', [m.values.x, f.w, ...(f.bias ? [f.bias] : [])], attrs, { domain: ORTFUSE_DOMAIN })[0];
  },
});

/** The fuse-linear pass (infers shapes first where the graph has none). */
export const fuseLinearPass = shapedRulePass(NAME, [fuseLinear], ['MatMul'], ['Linear']);
