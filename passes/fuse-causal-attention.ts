/**
 * fuse-causal-attention — a layer's scaled dot-product attention with a causal mask becomes one op
 * (custom-ops/causal-attention/schema.ts):
 *
 *   softmax(q·kᵀ·scale + mask)·v     with k, v repeated to the query heads (GQA)
 *     →  ai.ortfuse.CausalAttention(q, k, v, scale=·)[0]     (k, v as before the repeat)
 *
 * as torch 2.11's dynamo exporter writes transformers 5.17's Qwen2 attention (models/qwen2-layer.ts
 * builds the same):
 *   eager:  MatMul(q, Transpose(kf, [0,1,3,2])) → Mul(scale) → Add(mask) → Softmax(-1) → MatMul(., vf)
 *   sdpa:   MatMul(Mul(q, √scale), Mul(Reshape(Transpose(Reshape(kf, [-1, T, D]), [0,2,1]), [B, H, D, T]), √scale))
 *           → Add(mask) → Softmax(-1) → Where(IsNaN(p), 0, p) → MatMul(., vf)
 * with kf = Reshape(Expand(Unsqueeze(k, 2), [B, Hkv, g, T, D]), [B, Hkv·g, T, D]) (repeat_kv) or k
 * itself. The mask is dropped, so it must be exactly causal: passes/causal-mask.ts evaluates it (a
 * mask that reads input data — an attention_mask — or compares positions twice is not fused). The
 * sdpa NaN guard only acts on fully masked rows, which a causal mask has none of.
 * Not fused: a repeat whose shapes do not prove head h reads kv head ⌊h/g⌋, a key transpose that is
 * not provably the last two axes, a non-constant or non-positive scale, an intermediate read elsewhere.
 *
 * Off by default (`fusionPipeline({ attention: true })`, `--fuse-attention`) until measured on the H200.
 */
import type { Value } from '../src/ir/graph.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { dimEq } from '../src/ir/infer/index.js';
import { formatShape, type Dim } from '../src/ir/types.js';
import { constantNumbers } from '../src/rewrite/constant.js';
import { c, named, or, p, shared, v, type PValue } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { causalMaskProblem, evalWithShapes } from './causal-mask.js';
import { shapedRulePass } from './fusion-shapes.js';

export const NAME = 'fuse-causal-attention';

/** repeat_kv(x) (kept when read elsewhere, e.g. by a Shape) or x itself, captured as `<name>f`. */
function kvHeads(name: string): PValue {
  return named(`${name}f`, or([
    shared(p.Reshape(p.Expand(p.Unsqueeze(v(name), v()), v()), v())), // Reshape(Expand(Unsqueeze(k, 2))) -> repeat_kv(k)
    v(name), // k -> k (no grouping)
  ]));
}

const kf = kvHeads('k');
// MatMul(q, Transpose(kf)) · scale -> eager scores
const eager = p.Mul(p.MatMul(v('q'), p.Transpose(kf, { perm: [0, 1, 3, 2] })), v('scale'));
// (q · √scale) · (kfᵀ · √scale), kfᵀ through [-1, T, D] -> sdpa scores
// (a static export folds repeat_kv's last Reshape into the flattening one: Expand [B, Hkv, g, T, D] -> [B·Hq, T, D])
const kexp = named('kexp', p.Expand(p.Unsqueeze(v('k'), v()), v()));
const kt = named('kt', p.Reshape(p.Transpose(named('kflat', p.Reshape(or([kf, kexp]), v())), { perm: [0, 2, 1] }), v()));
const sdpa = p.MatMul(p.Mul(v('q'), v('sq')), p.Mul(kt, v('sk')));
const probs = p.Softmax(p.Add(or([eager, sdpa]), v('mask')), { axis: (a) => a === -1 || a === 3 });
// Where(IsNaN(p), 0, p) -> p (sdpa's guard for fully masked rows)
const guarded = or([p.Where(p.IsNaN(probs), c(0), probs), probs]);
const pattern = p.MatMul(guarded, kvHeads('v'));

interface AttnFacts {
  scale: number;
}

/** The one number of a scalar constant. */
function scalar(x: Value | undefined): number | undefined {
  const n = x && constantNumbers(x, 1);
  return n && n.length === 1 ? n[0] : undefined;
}

/**
 * Why `xf` (matched by kvHeads, or the Expand `kexp`) is not x with each kv head repeated
 * g = Hq/Hkv times in a row ([B, Hq, T, D], or [B, Hkv, g, T, D] for the Expand).
 */
function repeatProblem(x: Value, xf: Value, hq: number): string | undefined {
  const xs = x.tensorType?.shape;
  if (!xs || xs.length !== 4 || typeof xs[1] !== 'number') return `${x.name} ${formatShape(xs)} is not [B, Hkv, T, D] with a known Hkv`;
  if (xf === x) return xs[1] === hq ? undefined : `${x.name} has ${xs[1]} heads, the queries ${hq}`;
  const expandOnly = xf.producer!.opType === 'Expand';
  const reshape = xf.producer!, expand = expandOnly ? reshape : reshape.inputs[0]!.producer!, unsq = expand.inputs[0]!.producer!;
  const axes = unsq.inputs[1] ? constantNumbers(unsq.inputs[1]) : unsq.attributes.has('axes') ? unsq.attrInts('axes') : undefined;
  if (!axes || axes.length !== 1 || (axes[0] !== 2 && axes[0] !== -3)) return `the repeat unsqueezes axes ${axes ? `[${axes}]` : '?'}, not [2]`;
  const g = hq / xs[1];
  const es = expand.outputs[0].tensorType?.shape, rs = xf.tensorType?.shape;
  const want = (s: Dim[] | undefined, dims: Dim[]) => !!s && s.length === dims.length && s.every((d, i) => dimEq(d, dims[i]));
  if (!want(es, [xs[0], xs[1], g, xs[2], xs[3]])) return `the repeat expands ${x.name} ${formatShape(xs)} to ${formatShape(es)}, not [B, ${xs[1]}, ${g}, T, D]`;
  if (!expandOnly && !want(rs, [xs[0], hq, xs[2], xs[3]])) return `the repeat's reshape gives ${formatShape(rs)}, not [B, ${hq}, T, D]`;
  return undefined;
}

/**
 * Why kt is not kf [B, H, T, D] (or the Expand [B, Hkv, g, T, D]) with its last two axes swapped: the
 * reshape targets evaluated for two made-up shapes of it (symbolic), or its own shape (static).
 */
function transposeProblem(kf: Value, kflat: Value, kt: Value): string | undefined {
  const own = kf.tensorType?.shape;
  const isStatic = !!own && own.every((d): d is number => typeof d === 'number');
  if (own?.length !== 4 && !isStatic) return `the keys ${formatShape(own)} before the transpose are neither [B, H, T, D] nor static`;
  for (const dims of isStatic ? [own as number[]] : [[2, 3, 5, 7], [3, 2, 11, 13]]) {
    const memo = new Map();
    const shapeOf = (x: Value) => (x === kf ? dims : undefined);
    const r1 = evalWithShapes(kflat.producer!.inputs[1]!, shapeOf, memo)?.toNumbers();
    const r2 = evalWithShapes(kt.producer!.inputs[1]!, shapeOf, memo)?.toNumbers();
    // [B, Hkv, g, T, D] reads as [B, Hkv·g, T, D]
    const [b, h, t, d] = dims.length === 5 ? [dims[0], dims[1] * dims[2], dims[3], dims[4]] : dims;
    const okFlat = r1 && r1.length === 3 && r1[1] === t && r1[2] === d && (r1[0] === -1 || r1[0] === b * h);
    const okBack = r2 && r2.length === 4 && r2[0] === b && r2[1] === h && r2[2] === d && r2[3] === t;
    if (!okFlat || !okBack) return `the key transpose's reshapes are [${r1 ?? '?'}] and [${r2 ?? '?'}] for keys [${dims}], not [-1, ${t}, ${d}] and [${b}, ${h}, ${d}, ${t}]`;
  }
  return undefined;
}

export const fuseCausalAttention = defineRule<AttnFacts>({
  name: NAME,
  pattern,
  check(m) {
    const { q, k, v: vv, vf, mask } = m.values;
    const kf = m.values.kf ?? m.values.kexp;
    const qs = q.tensorType?.shape;
    if (!qs || qs.length !== 4 || typeof qs[1] !== 'number' || typeof qs[3] !== 'number') return no(`q ${formatShape(qs)} is not [B, H, T, D] with known H and D`, q);
    const elem = q.tensorType?.elemType;
    if ([k, vv].some((x) => x.tensorType?.elemType !== elem)) return no('q, k and v differ in element type', k);
    for (const [x, xf] of [[k, kf], [vv, vf]]) {
      const why = repeatProblem(x, xf, qs[1]);
      if (why) return no(why, xf);
      const xs = x.tensorType!.shape!;
      if (!dimEq(xs[0], qs[0]) || !dimEq(xs[2], qs[2]) || !dimEq(xs[3], qs[3])) return no(`${x.name} ${formatShape(xs)} and q ${formatShape(qs)} differ in batch, length or head size`, x);
    }
    let scale: number | undefined;
    if (m.values.kt) {
      const why = transposeProblem(kf, m.values.kflat, m.values.kt);
      if (why) return no(why, m.values.kt);
      const sq = scalar(m.values.sq), sk = scalar(m.values.sk);
      scale = sq !== undefined && sk !== undefined ? sq * sk : undefined;
    } else scale = scalar(m.values.scale);
    if (scale === undefined || !(scale > 0) || !Number.isFinite(scale)) return no(`the scale is not a positive scalar constant (${scale ?? 'not constant'})`, m.values.scale ?? m.values.sq);
    const why = causalMaskProblem(mask, qs[0], qs[2]);
    if (why) return no(why, mask);
    return ok({ scale: Math.fround(scale) });
  },
  rewrite(b, m, f) {
    return b.op.call('CausalAttention', [m.values.q, m.values.k, m.values.v], { scale: { float: f.scale } }, { domain: ORTFUSE_DOMAIN, outputs: 2 })[0];
  },
});

/** The fuse-causal-attention pass (infers shapes first where the graph has none). */
export const fuseCausalAttentionPass = shapedRulePass(NAME, [fuseCausalAttention], ['Softmax'], ['CausalAttention']);
