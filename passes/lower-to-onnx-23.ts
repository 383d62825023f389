/**
 * lower-to-onnx-23 — the forward fused ops that ONNX opset 23 has as single ops become those ops,
 * so an EP with kernels for them (onnxruntime-web's WebGPU EP) runs one kernel per node
 * instead of the fused op's function body:
 *
 *   ai.ortfuse::RMSNorm(x, w; epsilon, stash_type=FLOAT)
 *     -> RMSNormalization(x, w; axis=-1, epsilon, stash_type=1)
 *        (https://onnx.ai/onnx/operators/onnx__RMSNormalization.html: Normalized cast back to X's
 *        type, then times Scale — custom-ops/rms-norm/schema.ts's math; epsilon is always written,
 *        the ONNX default 1e-5 differs from ours)
 *   ai.ortfuse::RoPE(x [B, H, S, D], cos, sin [B|1, 1, S, D])
 *     -> RotaryEmbedding(x, cos_cache, sin_cache; interleaved=0)
 *        (https://onnx.ai/onnx/operators/onnx__RotaryEmbedding.html: 4-D X is (batch, heads, seq,
 *        head_size); without position_ids the caches are [B, S, D/2] — ORT 1.30 does not broadcast
 *        a batch-1 cache, so it is expanded; out = [x1·c − x2·s, x2·c + x1·s], which is RoPE's
 *        rotate-half only when cos/sin's two halves are equal: proven from the graph, else kept)
 *        cos_cache = Expand(Slice(Squeeze(cos, [1]), [0], [D/2], [-1]), [B, S, D/2]), built once
 *        per (cos, sin, B) and shared by q and k.
 *
 * Not lowered (the node keeps its body; `whyNotLowered` says why): element types other than
 * float32, RMSNorm with stash_type DOUBLE, RoPE whose x is not 4-D with a known even D, cos/sin
 * whose batch is neither 1 nor x's, cos/sin whose halves are not provably equal. Backward nodes
 * (RMSNormGrad, RoPEGrad) are separate nodes and stay.
 *
 * The ops need opset 23: `raiseOpsetTo23` raises the default-domain import of the model AND of
 * every function (a model-local function must import the model's opset, or ORT fails). From opset
 * 20 to 23 every ONNX op keeps its meaning except the ones in MEANING_CHANGED (checked against the
 * ONNX changelog: the other 21/22/23 versions only add element types — int4, bfloat16, float4,
 * float8 — or reword docs), so it refuses models below 20 and models holding those ops. Meant for a
 * backend's private copy of a graph (src/runtime/webgpu/training-spec.ts), never for the user's model.
 */
import { FUSED_INFER_RULES } from '../custom-ops/registry.js';
import { rmsNormalization23 } from '../custom-ops/rms-norm/function.js';
import { rotaryCaches, rotaryEmbedding23, sharedRotaryCaches } from '../custom-ops/rope/function.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { fail } from '../src/errors.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { commit } from '../src/ir/commit.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Graph, Model, Node, Value } from '../src/ir/graph.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { modelGraphs } from '../src/ir/walk.js';
import { constantNumbers, constantTensor } from '../src/rewrite/constant.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { p, v } from '../src/rewrite/pattern.js';
import { defineRule, graphsOf, no, ok, rulePass, type CheckResult } from '../src/rewrite/rule.js';
import { DataType, dataTypeName } from '../src/onnx/schema.js';

export const NAME = 'lower-to-onnx-23';

/** The fused ops this pass can lower (keys as the webgpu policy names them). */
export type Onnx23Op = 'rmsNorm' | 'rope';
/** ai.ortfuse op type of each, and the ONNX op it becomes. */
export const ONNX23: Record<Onnx23Op, { fused: string; onnx: string }> = {
  rmsNorm: { fused: 'RMSNorm', onnx: 'RMSNormalization' },
  rope: { fused: 'RoPE', onnx: 'RotaryEmbedding' },
};

/** Default-domain ops whose meaning changed between opset 20 and 23, and the version of the change. */
const MEANING_CHANGED: Record<string, number> = {
  GroupNormalization: 21, // scale/bias per channel, not per group
  QuantizeLinear: 21, // blocked quantization, output_dtype
  DequantizeLinear: 21,
  QLinearMatMul: 21,
};
const MIN_OPSET = 20;
const F = DataType.FLOAT;

/**
 * Raise the model's and its functions' default-domain opset to 23 (and the IR version to 11,
 * the one opset 23 belongs to); refuses, naming the op and node, where some op would change meaning.
 */
export function raiseOpsetTo23(model: Model): boolean {
  const from = model.opset('') ?? fail('unsupported', `${NAME}: the model imports no default-domain opset`);
  if (from >= 23) return false;
  if (from < MIN_OPSET) fail('unsupported', `${NAME}: the model imports opset ${from}; raising it to 23 is checked only from opset ${MIN_OPSET}`);
  const graphs = [...graphsOf(model), ...modelGraphs(model, { main: false, functions: (f) => f.domain === ORTFUSE_DOMAIN })];
  for (const g of graphs)
    for (const n of g.nodes) {
      const at = n.domain === '' || n.domain === 'ai.onnx' ? MEANING_CHANGED[n.opType] : undefined;
      if (at !== undefined && at > from) fail('unsupported', `${NAME}: ${n.label} changes meaning in opset ${at}; cannot raise opset ${from} to 23`);
    }
  model.opsetImports.set('', 23);
  for (const f of model.functions) if (f.opsetImports.has('') || f.opsetImports.has('ai.onnx')) {
    f.opsetImports.delete('ai.onnx');
    f.opsetImports.set('', 23);
  }
  model.irVersion = Math.max(model.irVersion, 11);
  for (const g of graphs) flattenAsReshape(g);
  return true;
}

/**
 * Flatten(x, axis=-1) -> Reshape(x, Concat([-1], Shape(x, start=-1))): ORT-web 1.30's WebGPU EP
 * has no Flatten kernel for opset 23 (measured: RMSNormGrad's body Flatten went to the CPU EP,
 * with copies both ways); Reshape-23 it runs.
 */
function flattenAsReshape(g: Graph): void {
  for (const n of g.nodes.slice()) {
    if (n.opType !== 'Flatten' || (n.domain !== '' && n.domain !== 'ai.onnx') || n.attrInt('axis', 1) !== -1) continue;
    const b = new GraphBuilder(g, { staged: true, tag: NAME });
    const shape = b.op.Concat(b.op.Constant({ value: Tensor.from(DataType.INT64, [1], [-1n]) }), b.op.Shape(n.inputs[0]!, { start: -1 }), { axis: 0 });
    const y = b.op.Reshape(n.inputs[0]!, shape);
    commit(g, { remove: [n], add: b.nodes, replace: [[n.outputs[0], y]] });
  }
}

const lastDim = (val: Value | null | undefined): number | undefined => {
  const s = val?.tensorType?.shape;
  const d = s?.[s.length - 1];
  return typeof d === 'number' ? d : undefined;
};
const rankOf = (val: Value | null | undefined): number | undefined => val?.tensorType?.shape?.length;
const isLast = (axis: number, rank: number | undefined): boolean => axis === -1 || (rank !== undefined && axis === rank - 1);

/** Why the two halves of `val`'s last axis are not provably equal (undefined: they are). */
export function unequalHalves(val: Value, depth = 0): string | undefined {
  const t = constantTensor(val);
  const D = lastDim(val) ?? t?.dims[t.dims.length - 1];
  if (t) {
    if (D === undefined || D % 2 || t.size > 1 << 22) return `constant '${val.name}' is too large or not [..., D]`;
    const a = t.toArray() as Float32Array;
    for (let r = 0; r < a.length; r += D) for (let i = 0; i < D / 2; i++) if (a[r + i] !== a[r + D / 2 + i]) return `constant '${val.name}' has unequal halves`;
    return undefined;
  }
  const n = val.producer;
  const unproven = `'${val.name}' is not provably Cos/Sin of Concat(f, f) over the last axis`;
  if (!n || depth > 32 || (n.domain !== '' && n.domain !== 'ai.onnx')) return unproven;
  const src = n.inputs[0];
  if (!src) return unproven;
  const sameLast = D !== undefined && lastDim(src) === D;
  switch (n.opType) {
    case 'Concat': // Concat(f, f) on the last axis
      return n.inputs.length === 2 && n.inputs[0] === n.inputs[1] && isLast(n.attrInt('axis'), rankOf(val)) ? undefined : unproven;
    case 'Cos': case 'Sin': case 'Cast': case 'Identity': case 'Neg': // elementwise
      return unequalHalves(src, depth + 1);
    case 'Mul': case 'Div': { // by a one-element constant (attention scaling)
      const [a, b] = n.inputs;
      if (constantNumbers(b, 1)) return unequalHalves(a!, depth + 1);
      if (n.opType === 'Mul' && constantNumbers(a, 1)) return unequalHalves(b!, depth + 1);
      return unproven;
    }
    case 'Unsqueeze': case 'Squeeze': case 'Reshape': case 'Expand': // rows of length D stay rows
      return sameLast ? unequalHalves(src, depth + 1) : unproven;
    case 'Gather':
      return sameLast && !isLast(n.attrInt('axis', 0), rankOf(src)) ? unequalHalves(src, depth + 1) : unproven;
    case 'Transpose': {
      const perm = n.attrInts('perm', []);
      return sameLast && perm.length > 0 && isLast(perm[perm.length - 1], rankOf(src)) ? unequalHalves(src, depth + 1) : unproven;
    }
    case 'Slice': {
      const axes = n.inputs[3] ? constantNumbers(n.inputs[3], 8) : undefined;
      return sameLast && axes && !axes.some((a) => isLast(a, rankOf(src))) ? unequalHalves(src, depth + 1) : unproven;
    }
    default:
      return unproven;
  }
}

/** Why `n` (ai.ortfuse RMSNorm or RoPE) cannot become its opset-23 op; undefined when it can. */
export function whyNotLowered(n: Node): string | undefined {
  for (const [i, val] of n.inputs.entries()) {
    const e = val?.tensorType?.elemType;
    if (e !== F) return `input ${i} '${val?.name}' is ${e === undefined ? 'of unknown type' : dataTypeName(e)}, not float32`;
  }
  if (n.opType === 'RMSNorm') {
    if (n.attrInt('stash_type', F) !== F) return 'stash_type is not FLOAT';
    return undefined;
  }
  const [x, cos, sin] = n.inputs as Value[];
  const xs = x.tensorType?.shape;
  const cs = cos.tensorType?.shape;
  const D = lastDim(x);
  if (!xs || xs.length !== 4 || D === undefined || D % 2) return `x '${x.name}' is not [B, heads, S, D] with a known even D`;
  if (!cs || cs.length !== 4 || cs[1] !== 1 || lastDim(cos) !== D) return `cos '${cos.name}' is not [B|1, 1, S, ${D}]`;
  if (cs[0] !== 1 && cs[0] !== xs[0]) return `cos '${cos.name}' has batch ${cs[0]}, neither 1 nor x's ${xs[0]}`;
  return unequalHalves(cos) ?? unequalHalves(sin);
}

const x = v('x');
const w = v('w');
const cos = v('cos');
const sin = v('sin');
// ai.ortfuse::RMSNorm(x, w) -> RMSNormalization(x, w)
const rmsPattern = p.call('RMSNorm', [x, w], {}, { domain: ORTFUSE_DOMAIN })[0];
// ai.ortfuse::RoPE(x, cos, sin) -> RotaryEmbedding(x, caches(cos), caches(sin))
const ropePattern = p.call('RoPE', [x, cos, sin], {}, { domain: ORTFUSE_DOMAIN })[0];

type Facts = { op: 'rmsNorm'; epsilon: number } | { op: 'rope' };

/** The rule, lowering the ops of `ops` only. */
export function lowerToOnnx23Rule(ops: readonly Onnx23Op[]) {
  const patterns = [...(ops.includes('rmsNorm') ? [rmsPattern] : []), ...(ops.includes('rope') ? [ropePattern] : [])];
  return defineRule<Facts>({
    name: NAME,
    pattern: patterns,
    check(m): CheckResult<Facts> {
      const n = m.root;
      if ((m.graph.model.opset('') ?? 0) < 23) return no('the model imports opset < 23 (raiseOpsetTo23 first)');
      const why = whyNotLowered(n);
      if (why) return no(why, n.inputs[0] ?? undefined);
      return ok(n.opType === 'RMSNorm' ? { op: 'rmsNorm', epsilon: n.attrFloat('epsilon', 1e-6) } : { op: 'rope' });
    },
    rewrite(b, m, f) {
      const { x } = m.values;
      if (f.op === 'rmsNorm') return rmsNormalization23(b, x, m.values.w, f.epsilon);
      const { cos, sin } = m.values;
      const [cc, sc] = sharedRotaryCaches(m.graph, NAME, x, cos, sin) ?? caches(b, x, cos, sin);
      return rotaryEmbedding23(b, x, cc, sc);
    },
  });
}

/** Caches [B, S, D/2]: constant shapes where x's batch and cos's shape are static. */
function caches(b: GraphBuilder, x: Value, cos: Value, sin: Value): [Value, Value] {
  const B = x.tensorType!.shape![0];
  const cs = cos.tensorType!.shape!;
  if (typeof B !== 'number' || !cs.every((d) => typeof d === 'number')) return rotaryCaches(b, x, cos, sin);
  const [cb, , S, D] = cs as number[];
  const i64 = (vals: number[]): Value => b.constant(vals, { dtype: DataType.INT64, dims: [vals.length] });
  const cache = (t: Value): Value => {
    const half = b.op.Slice(b.op.Squeeze(t, i64([1])), i64([0]), i64([D / 2]), i64([-1]));
    return cb === B ? half : b.op.Expand(half, i64([B, S, D / 2]));
  };
  return [cache(cos), cache(sin)];
}

/** Forward nodes of `ops` in the main graph (where the fused ops of a training graph live). */
export function fusedNodes(model: Model, ops: readonly Onnx23Op[]): Node[] {
  const types = new Set(ops.map((o) => ONNX23[o].fused));
  return model.graph.nodes.filter((n) => n.domain === ORTFUSE_DOMAIN && types.has(n.opType));
}

/**
 * The pass: where some node of `ops` can be lowered, raise the opset to 23 and lower every node
 * that can be. Nodes that cannot keep their bodies (`whyNotLowered`).
 */
export function lowerToOnnx23Pass(ops: readonly Onnx23Op[] = ['rmsNorm', 'rope']): Pass {
  const inner = rulePass(NAME, [lowerToOnnx23Rule(ops)]);
  return {
    name: NAME,
    run(model, ctx): PassResult {
      const nodes = fusedNodes(model, ops);
      // Builders' graphs may lack the shapes the checks read; exported and training graphs have them.
      if (nodes.some((n) => n.inputs.some((i) => i && !i.tensorType?.shape))) inferShapes(model, { rules: FUSED_INFER_RULES });
      if (!nodes.some((n) => !whyNotLowered(n))) return { modified: false, counts: {} };
      const raised = raiseOpsetTo23(model);
      const r = inner.run(model, ctx);
      return { modified: raised || r.modified, counts: r.counts };
    },
  };
}
