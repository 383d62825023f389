/**
 * Portable bodies of ai.ortfuse::Linear and LinearGrad (math in schema.ts and grad-schema.ts),
 * every target, on x's leading axes flattened to rows (x₂ = Reshape(x, [-1, K])):
 *
 *   Linear:      y = Reshape(Gemm(x₂, w, bias, transB=trans_b), [x's leading dims, N])
 *   LinearGrad:  dx = dy₂·w or dy₂·wᵀ (Gemm),  dw = Gemm(dy₂, x₂, transA=1) or Gemm(x₂, dy₂, transA=1),
 *                db = ReduceSum(dy₂, axis 0)
 *
 * Gemm takes trans_b by reference and the optional bias as its optional C, so one Linear body
 * serves every caller. LinearGrad's dw differs in more than an attribute (which operand comes
 * first), so its body is built for the one trans_b all its callers use (bodyOptions); when they
 * differ, dw is an If on the calling node's trans_b (both Gemms in its branches; cpu-side control
 * flow on WebGPU EPs, so only for such mixed models).
 * Under precision 'f16' every GEMM operand is rounded through float16 (../precision.ts gemmOperand).
 */
import { DataType } from '../../src/onnx/schema.js';
import { Graph, type Node, type Value } from '../../src/ir/graph.js';
import { Body } from '../../src/fused/body.js';
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
  const wr = r(w);
  const db = b.reduce('ReduceSum', dy2, [0], false);
  const dwNK = (bb: Body) => bb.op.Gemm(dyr, xr, { transA: 1 }); // dy₂ᵀ·x₂ [N, K]
  const dwKN = (bb: Body) => bb.op.Gemm(xr, dyr, { transA: 1 }); // x₂ᵀ·dy₂ [K, N]
  const transB = opts.transB ?? 1;
  if (transB === 'node') {
    // Callers of both orientations: dxᵀ = Gemm(w, dy₂, transA=trans_b, transB=1) (wᵀ·dy₂ᵀ or w·dy₂ᵀ), dw by an If.
    const dxT = op.call('Gemm', [wr, dyr], { transA: b.attrRef('transA', 'INT', 'trans_b'), transB: 1 })[0];
    const dw = ifElse(b, op.Cast(b.attrConst('int', 'trans_b'), { to: DataType.BOOL }), dwNK, dwKN);
    return [unrows(b, op.Transpose(dxT, { perm: [1, 0] }), x), dw, db];
  }
  const dx2 = op.Gemm(dyr, wr, { transB: 1 - transB });
  return [unrows(b, dx2, x), transB ? dwNK(b) : dwKN(b), db];
}

/** If(cond) with one output, each branch a subgraph built by `then` / `otherwise` (outer values read directly). */
function ifElse(b: Body, cond: Value, then: (bb: Body) => Value, otherwise: (bb: Body) => Value): Value {
  const branch = (name: string, build: (bb: Body) => Value): Graph => {
    const g = new Graph(b.graph.model);
    g.name = b.graph.model.freshName(name);
    const bb = new Body(g, b.opset);
    bb.b.output(build(bb));
    return g;
  };
  const thenG = branch('linear_dw_nk', then), elseG = branch('linear_dw_kn', otherwise);
  const [out] = b.op.call('If', [cond], { then_branch: thenG, else_branch: elseG }, { outputs: 1 });
  thenG.owner = elseG.owner = out.producer;
  return out;
}

/** Linear: the precision its callers use (trans_b is read at run time). */
function linearOptions(nodes: Node[], target: Target): BodyOptions {
  return precisionOption(nodes, target, linearSchema.name);
}

/** LinearGrad: the precision and the trans_b its callers use ('node' when they differ: read at run time). */
function linearGradOptions(nodes: Node[], target: Target): BodyOptions {
  const all = new Set(nodes.map((n) => n.attrInt('trans_b', 1)));
  const opts = precisionOption(nodes, target, linearGradSchema.name);
  return all.size > 1 ? { ...opts, transB: 'node' } : all.has(0) ? { ...opts, transB: 0 } : opts;
}

export const linear: FusedOp = { schema: linearSchema, buildBody: buildLinear, bodyOptions: linearOptions };

export const linearGradOp: FusedOp = { schema: linearGradSchema, buildBody: buildLinearGrad, bodyOptions: linearGradOptions };
