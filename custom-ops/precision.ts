/**
 * The `precision` attribute of the fused ops with GEMMs (SwiGLUMLP and its forms and backward ops,
 * FusedLinearCrossEntropy and its with-grad form, Linear and LinearGrad, CausalAttention and
 * CausalAttentionGrad; issue 12's `--precision mixed`):
 *
 *   'fp32' (default, or absent)  every GEMM in fp32, as before the attribute existed
 *   'f16'                        every GEMM operand rounded to IEEE binary16 (nearest even, overflow
 *                                to ±inf, subnormals kept), products accumulated in fp32; activations,
 *                                softmax, losses, row statistics and stored outputs stay fp32
 *
 * Portable bodies model the rounding as Cast(to=FLOAT16) → Cast back before each fp32 MatMul/Gemm
 * (`gemmOperand`); the WGSL kernels run src/webgpu/gemm-mixed.ts `gemmMixed`.
 */
import { fail } from '../src/errors.js';
import { DataType } from '../src/onnx/schema.js';
import type { Node, Value } from '../src/ir/graph.js';
import type { Body } from '../src/fused/body.js';
import type { AttrSpec, Attrs, BodyOptions, Target } from '../src/fused/types.js';

export const PRECISIONS = ['fp32', 'f16'] as const;
export type Precision = (typeof PRECISIONS)[number];

export const PRECISION_ATTR: AttrSpec = {
  name: 'precision', type: 'STRING', default: 'fp32', values: PRECISIONS,
  doc: "'fp32', or 'f16': every GEMM operand rounded to IEEE half, fp32 accumulation (everything else fp32)",
};

/** The node's precision ('fp32' when absent), or an error naming the node and the value. */
export function nodePrecision(n: Node): Precision {
  const v = n.attrString('precision', 'fp32');
  if (!(PRECISIONS as readonly string[]).includes(v)) fail('invalid', `${n.label}: attribute precision='${v}' is not one of 'fp32', 'f16'`);
  return v as Precision;
}

/** Attributes for a node emitted from `n` (a grad node, a form swap): its precision when it has one. */
export function precisionAttrs(n: Node): Attrs {
  return n.attr('precision') ? { precision: nodePrecision(n) } : {};
}

/**
 * Body option `precision` from an op's callers: the one they all use, or 'node' when they differ
 * (the body then compares the attribute at run time: cpu only, string Equal has no kernel in
 * onnxruntime-web's WebGPU build; `perNode` false: an error, for ops whose body differs in more
 * than its operands).
 */
export function precisionOption(nodes: Node[], target: Target, what: string, perNode = true): BodyOptions {
  const all = new Set(nodes.map(nodePrecision));
  if (all.size <= 1) return all.has('f16') ? { precision: 'f16' } : {}; // fp32: the body (and its stamp) as before the attribute
  if (target === 'webgpu' || !perNode) fail('unsupported', `${what} nodes use different precisions (${[...all].join(', ')}); ${perNode ? 'the webgpu body needs one' : 'one body serves them all'}`);
  return { precision: 'node' };
}

/**
 * A GEMM operand under the body's precision: `x` itself ('fp32', or no option), rounded through
 * float16 ('f16'), or chosen at run time from the calling node's attribute ('node').
 */
export function gemmOperand(b: Body, x: Value, precision: BodyOptions['precision']): Value {
  if (precision === undefined || precision === 'fp32') return x;
  const rounded = b.op.CastLike(b.op.Cast(x, { to: DataType.FLOAT16 }), x);
  if (precision === 'f16') return rounded;
  return b.op.Where(b.attrStringIs('precision', 'f16'), rounded, x);
}
