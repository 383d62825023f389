/**
 * fuse-rope — rotary position embedding in the rotate-half layout (transformers'
 * apply_rotary_pos_emb, as Qwen2 uses it) becomes one op:
 *
 *   x1 = x[..., :D/2], x2 = x[..., D/2:]
 *   y  = x * cos + concat(−x2, x1) * sin         x [B, heads, S, D], cos/sin [B|1, 1, S, D]
 *
 * → ai.ortfuse.RoPE(x, cos, sin) (custom-ops/rope/schema.ts), or, where the model imports opset
 * >= 23 and the cos/sin halves provably repeat (Cos/Sin of Concat(f, f)), ONNX
 * RotaryEmbedding-23 with interleaved=0 (https://onnx.ai/onnx/operators/onnx__RotaryEmbedding.html)
 * on [B, S, D/2] caches that are built once per cos/sin pair and shared by q and k.
 *
 * cos and sin must be recognised as one pair: Cos(a) and Sin(a) of the same angles a, reached
 * through the same chain of element-moving ops (Unsqueeze, Gather, ...). The fused nodes read the
 * matched cos/sin values, so q and k share them. Not fused: halves split elsewhere than D/2,
 * Concat(x1, −x2), a slice over another axis or with a step, cos/sin that are not such a pair.
 */
import { rotaryCaches, rotaryEmbedding23, canUseRotaryEmbedding23, sharedRotaryCaches } from '../custom-ops/rope/function.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { Node, Value } from '../src/ir/graph.js';
import type { Tensor } from '../src/ir/tensor.js';
import { formatShape } from '../src/ir/types.js';
import { constantNumbers } from '../src/rewrite/constant.js';
import { attrJs } from '../src/rewrite/matcher.js';
import { named, p, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok } from '../src/rewrite/rule.js';
import { shapedRulePass } from './fusion-shapes.js';

const NAME = 'fuse-rope';
const x = v('x');
const cos = v('cos');
const sin = v('sin');
// Slice(x, starts, ends[, axes[, steps]]) -> x1, x2 (bounds checked in `check`)
const x1 = named('x1', p.Slice(x, v(), v(), v(), v()));
const x2 = named('x2', p.Slice(x, v(), v(), v(), v()));
// Concat(Neg(x2), x1) -> rotate_half(x)
const rot = named('rot', p.Concat(p.Neg(x2), x1));
// Add(Mul(x, cos), Mul(rotate_half(x), sin)) -> y
const pattern = p.Add(p.Mul(x, cos), p.Mul(rot, sin));

export interface RopeFacts {
  /** Emit RotaryEmbedding-23 (opset >= 23 and cos/sin halves that repeat). */
  onnx23: boolean;
}

export const fuseRope = defineRule<RopeFacts>({
  name: NAME,
  pattern,
  check(m) {
    const { x, cos, sin, x1, x2, rot } = m.values;
    const xs = x.tensorType?.shape;
    const cs = cos.tensorType?.shape;
    if (!xs || xs.length !== 4) return no(`x ${formatShape(xs)} is not [B, heads, S, D]`, x);
    if (!cs || cs.length !== 4 || cs[1] !== 1) return no(`cos ${formatShape(cs)} is not [B|1, 1, S, D]`, cos);
    const D = typeof xs[3] === 'number' ? xs[3] : cs[3];
    if (typeof D !== 'number' || D % 2 !== 0) return no(`head dim ${D ?? '?'} of x is not a known even size`, x);
    const axis = Number(attrJs(rot.producer!.attributes.get('axis')));
    if (axis !== -1 && axis !== 3) return no(`Concat joins axis ${axis}, not the last`, rot);
    const r1 = sliceRange(x1, D);
    if (typeof r1 === 'string') return no(`first half: ${r1}`, x1);
    const r2 = sliceRange(x2, D);
    if (typeof r2 === 'string') return no(`second half: ${r2}`, x2);
    if (r1[0] !== 0 || r1[1] !== D / 2 || r2[0] !== D / 2 || r2[1] !== D)
      return no(`rotate_half must be concat(-x[${D / 2}:${D}], x[0:${D / 2}]); found concat(-x[${r2.join(':')}], x[${r1.join(':')}])`, rot);
    if (cos === sin) return no('the same value multiplies both terms', sin);
    const pair = cosSinPair(cos, sin);
    if (typeof pair === 'string') return no(pair, sin);
    return ok({ onnx23: pair.halvesRepeat && canUseRotaryEmbedding23(m.graph.model) });
  },
  rewrite(b, m, f) {
    const { x, cos, sin } = m.values;
    if (!f.onnx23) return b.op.call('RoPE', [x, cos, sin], {}, { domain: ORTFUSE_DOMAIN })[0];
    const [cc, sc] = sharedRotaryCaches(m.graph, NAME, x, cos, sin) ?? rotaryCaches(b, x, cos, sin);
    return rotaryEmbedding23(b, x, cc, sc);
  },
});

/** The fuse-rope pass (infers shapes first where the graph has none). */
export const fuseRopePass = shapedRulePass(NAME, [fuseRope], ['Neg'], ['RoPE', 'RotaryEmbedding']);

/** [start, end) of a one-axis Slice over the last axis (size D) with step 1, or why not. */
function sliceRange(s: Value, D: number): [number, number] | string {
  const [, starts, ends, axes, steps] = s.producer!.inputs;
  const st = constantNumbers(starts, 1);
  const en = constantNumbers(ends, 1);
  const ax = axes ? constantNumbers(axes, 1) : [0];
  const sp = steps ? constantNumbers(steps, 1) : [1];
  if (!st || !en || !ax || !sp || st.length !== 1 || en.length !== 1 || ax.length !== 1 || sp.length !== 1)
    return 'not a Slice of one axis with constant bounds';
  if (ax[0] !== -1 && ax[0] !== 3) return `slices axis ${ax[0]}, not the last`;
  if (sp[0] !== 1) return `step ${sp[0]}`;
  const clamp = (i: number): number => Math.min(Math.max(i < 0 ? i + D : i, 0), D);
  return [clamp(st[0]), clamp(en[0])];
}

/** Ops between Cos/Sin and the cos/sin values that move or select elements only. */
const CARRY = new Set(['Unsqueeze', 'Squeeze', 'Reshape', 'Expand', 'Cast', 'Identity', 'Gather', 'Slice', 'Transpose']);
/** Of those, the ones that leave the last axis alone (so repeated halves stay repeated). */
const KEEPS_LAST_AXIS = new Set(['Unsqueeze', 'Squeeze', 'Expand', 'Cast', 'Identity']);

/**
 * cos and sin as one pair: Cos(a) and Sin(a) of the same angles, through the same chain of
 * element-moving ops (same op, attributes and index/shape inputs at each step). `halvesRepeat`:
 * a = Concat(f, f) on the last axis and the chain leaves that axis alone.
 */
function cosSinPair(cos: Value, sin: Value): { halvesRepeat: boolean } | string {
  // Static-shape exports fold the whole cos/sin chain into constants: the fused op takes any
  // cos/sin values as they are; RotaryEmbedding-23 needs the halves to repeat, checked on the data.
  const ct = cos.initializer, st = sin.initializer;
  if (ct && st && ct.dims.join() === st.dims.join()) return { halvesRepeat: halvesRepeat(ct) && halvesRepeat(st) };
  let a = cos;
  let b = sin;
  let keepsLast = true;
  for (let depth = 0; depth < 16; depth++) {
    const na = a.producer;
    const nb = b.producer;
    if (!na || !nb) break;
    if (na.opType === 'Cos' && nb.opType === 'Sin') {
      if (na.inputs[0] !== nb.inputs[0]) return `cos and sin are Cos and Sin of different angles ('${na.inputs[0]?.name}', '${nb.inputs[0]?.name}')`;
      const cat = na.inputs[0]?.producer;
      const rank = na.inputs[0]?.tensorType?.shape?.length;
      const ax = cat?.opType === 'Concat' ? Number(attrJs(cat.attributes.get('axis'))) : NaN;
      const halves = !!cat && cat.inputs.length === 2 && cat.inputs[0] === cat.inputs[1] && (ax === -1 || (rank !== undefined && ax === rank - 1));
      return { halvesRepeat: keepsLast && halves };
    }
    if (na.opType !== nb.opType || !CARRY.has(na.opType) || !sameNodeArgs(na, nb)) break;
    keepsLast &&= KEEPS_LAST_AXIS.has(na.opType);
    a = na.inputs[0]!;
    b = nb.inputs[0]!;
  }
  return `cos '${cos.name}' and sin '${sin.name}' are not Cos and Sin of the same angles`;
}

/** True when the last axis of float tensor `t` is two equal halves (Concat(f, f) folded). */
function halvesRepeat(t: Tensor): boolean {
  const d = t.dims[t.dims.length - 1];
  if (d === undefined || d % 2 !== 0) return false;
  const a = t.toArray() as Float32Array;
  for (let r = 0; r < a.length; r += d) for (let i = 0; i < d / 2; i++) if (a[r + i] !== a[r + d / 2 + i]) return false;
  return true;
}

/** Same domain, attributes and inputs after the first (the same value or equal small constants). */
function sameNodeArgs(a: Node, b: Node): boolean {
  if (a.domain !== b.domain || a.inputs.length !== b.inputs.length || a.attributes.size !== b.attributes.size) return false;
  for (const [k, at] of a.attributes) if (JSON.stringify(attrJs(at)) !== JSON.stringify(attrJs(b.attributes.get(k)))) return false;
  return a.inputs.slice(1).every((va, i) => {
    const vb = b.inputs[i + 1];
    if (va === vb) return true;
    const ca = constantNumbers(va, 64);
    const cb = constantNumbers(vb, 64);
    return !!ca && !!cb && ca.length === cb.length && ca.every((z, j) => z === cb[j]);
  });
}
