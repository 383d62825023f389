/**
 * Portable bodies of ai.ortfuse::Linear and LinearGrad (math in schema.ts and grad-schema.ts),
 * every target, on x's leading axes flattened to rows (x₂ = Reshape(x, [-1, K])):
 *
 *   Linear:      y = Reshape(Gemm(x₂, w, bias, transB=trans_b), [x's leading dims, N])
 *   LinearGrad:  dx = dy₂·w or dy₂·wᵀ (Gemm),  dw = Gemm(dy₂, x₂, transA=1) or Gemm(x₂, dy₂, transA=1),
 *                db = ReduceSum(dy₂, axis 0)
 *
 * Gemm takes trans_b by reference and the optional bias as its optional C, so one Linear body
 * serves every caller. LinearGrad's orientation differs in more than an attribute (which operand
 * is transposed), so its body is built for the one trans_b all its callers use (bodyOptions).
 * Under precision 'f16' every GEMM operand is rounded through float16 (../precision.ts gemmOperand).
 */
import type { Node, Value } from '../../src/ir/graph.js';
import { fail } from '../../src/errors.js';
import type { Body } from '../../src/fused/body.js';
import type { BodyOptions, FusedOp, Target } from '../../src/fused/types.js';
import { gemmOperand, precisionOption } from '../precision.js';
import { linearGradSchema } from './grad-schema.js';
import { linearSchema } from './schema.js';

/** `v` [..., d] as rows [-1, d], d = its last dim. */
function rows(b: Body, v: Value): Value {
  return b.op.Reshape(v, b.op.Concat(b.const([-1]), b.dims(v, -1), { axis: 0 }));
}

/** `v2` [rows, d] back to `like`'s leading dims and d. */
function unrows(b: Body, v2: Value, like: Value): Value {
  return b.op.Reshape(v2, b.op.Concat(b.dims(like, 0, -1), b.dims(v2, 1, 2), { axis: 0 }));
}

export function buildLinear(b: Body, [x, w, bias]: Value[], _target: Target, opts: BodyOptions): Value[] {
  const r = (v: Value) => gemmOperand(b, v, opts.precision);
  const y2 = b.op.call('Gemm', [r(rows(b, x)), r(w), bias], { transB: b.attrRef('transB', 'INT', 'trans_b') })[0];
  return [unrows(b, y2, x)];
}

export function buildLinearGrad(b: Body, [x, w, dy]: Value[], _target: Target, opts: BodyOptions): Value[] {
  const op = b.op;
  const r = (v: Value) => gemmOperand(b, v, opts.precision);
  const x2 = rows(b, x), dy2 = rows(b, dy);
  const xr = r(x2), dyr = r(dy2);
  const transB = opts.transB ?? 1;
  const dx2 = op.Gemm(dyr, r(w), { transB: 1 - transB });
  const dw = transB ? op.Gemm(dyr, xr, { transA: 1 }) : op.Gemm(xr, dyr, { transA: 1 });
  return [unrows(b, dx2, x), dw, b.reduce('ReduceSum', dy2, [0], false)];
}

/** Linear: the precision its callers use (trans_b is read at run time). */
function linearOptions(nodes: Node[], target: Target): BodyOptions {
  return precisionOption(nodes, target, linearSchema.name);
}

/** LinearGrad: the precision and the trans_b its callers use (one body: they must agree on trans_b). */
function linearGradOptions(nodes: Node[], target: Target): BodyOptions {
  const all = new Set(nodes.map((n) => n.attrInt('trans_b', 1)));
  if (all.size > 1) fail('unsupported', `LinearGrad nodes use different trans_b (${[...all].join(', ')}; e.g. ${nodes.find((n) => n.attrInt('trans_b', 1) === 0)!.label}); one body serves them all: fuse every Linear of a model in one orientation`);
  const opts = precisionOption(nodes, target, linearGradSchema.name);
  return all.has(0) ? { ...opts, transB: 0 } : opts;
}

export const linear: FusedOp = { schema: linearSchema, buildBody: buildLinear, bodyOptions: linearOptions };

export const linearGradOp: FusedOp = { schema: linearGradSchema, buildBody: buildLinearGrad, bodyOptions: linearGradOptions };
