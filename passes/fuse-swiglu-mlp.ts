/**
 * fuse-swiglu-mlp — Qwen2's whole MLP becomes one op, after fuse-swiglu:
 *
 *   MatMul(SwiGLU(MatMul(x, Wgᵀ), MatMul(x, Wuᵀ)), Wdᵀ)   →   ai.ortfuse.SwiGLUMLP(x, Wg, Wu, Wd)
 *
 * as transformers' Qwen2MLP (`down_proj(act_fn(gate_proj(x)) * up_proj(x))`); op in
 * custom-ops/swiglu-mlp/schema.ts (weights in nn.Linear's [out, in] layout). Each projection matches
 * as the torch export writes it, MatMul(a, Transpose(W, [1, 0])) with W [out, in] (a Transpose read
 * elsewhere stays), or as MatMul(a, W') with W' stored [in, out] (a Transpose of W' is inserted).
 * Not fused: gate and up of different inputs, a projection or SwiGLU output read elsewhere too (the
 * matcher's consumer rule), weights that are not 2-D with static dims, or sizes that disagree.
 *
 * Off by default (`fusionPipeline({ mlp: true })`, `--fuse-mlp`) until measured on the H200.
 */
import type { Value } from '../src/ir/graph.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { dimEq } from '../src/ir/infer/index.js';
import { formatShape } from '../src/ir/types.js';
import { or, p, shared, v, type PValue } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { shapedRulePass } from './fusion-shapes.js';

export const NAME = 'fuse-swiglu-mlp';

const x = v('x');

/** a · Wᵀ: Transpose(W [out, in]) (torch export) or a weight `W'` stored [in, out]. */
function weight(name: string): PValue {
  return or([
    shared(p.Transpose(v(name), { perm: [1, 0] })), // MatMul(a, Transpose(W)) -> a·Wᵀ
    v(`${name}_t`), // MatMul(a, W') with W' = Wᵀ stored -> a·W'
  ]);
}

const pattern = p.MatMul(p.call('SwiGLU', [p.MatMul(x, weight('wg')), p.MatMul(x, weight('wu'))], {}, { domain: ORTFUSE_DOMAIN })[0], weight('wd'));

interface Weight {
  value: Value;
  /** Stored [in, out]: the op gets a Transpose of it. */
  transpose: boolean;
}

interface MlpFacts {
  gate: Weight;
  up: Weight;
  down: Weight;
}

export const fuseSwigluMlp = defineRule<MlpFacts>({
  name: NAME,
  pattern,
  check(m) {
    const pick = (name: string): Weight => (m.values[name] ? { value: m.values[name], transpose: false } : { value: m.values[`${name}_t`], transpose: true });
    const w = { gate: pick('wg'), up: pick('wu'), down: pick('wd') };
    // [out, in] of each weight as the op reads it.
    const dims: Record<string, [number, number]> = {};
    for (const [k, { value, transpose }] of Object.entries(w)) {
      const s = value.tensorType?.shape;
      if (!s || s.length !== 2 || typeof s[0] !== 'number' || typeof s[1] !== 'number') return no(`the ${k} weight ${formatShape(s)} is not 2-D with static dims`, value);
      dims[k] = transpose ? [s[1], s[0]] : [s[0], s[1]];
    }
    const [I, H] = dims.gate;
    const xs = m.values.x.tensorType?.shape;
    const sizes = `x ${formatShape(xs)}, gate [${dims.gate}], up [${dims.up}], down [${dims.down}] as [out, in]`;
    if (dims.up[0] !== I || dims.up[1] !== H || dims.down[0] !== H || dims.down[1] !== I) return no(`weight sizes disagree (${sizes})`, w.down.value);
    if (!xs || !xs.length || !dimEq(xs[xs.length - 1] ?? null, H)) return no(`x is not [..., ${H}] (${sizes})`, m.values.x);
    const elem = m.values.x.tensorType?.elemType;
    if (Object.values(w).some((q) => q.value.tensorType?.elemType !== elem)) return no(`x and the weights differ in element type`, m.values.x);
    return ok(w);
  },
  rewrite(b, m, f) {
    const w = (q: Weight) => (q.transpose ? b.op.Transpose(q.value, { perm: [1, 0] }) : q.value);
    return b.op.call('SwiGLUMLP', [m.values.x, w(f.gate), w(f.up), w(f.down)], {}, { domain: ORTFUSE_DOMAIN })[0];
  },
});

/** The fuse-swiglu-mlp pass (infers shapes first where the graph has none). */
export const fuseSwigluMlpPass = shapedRulePass(NAME, [fuseSwigluMlp], ['SwiGLU'], ['SwiGLUMLP']);
