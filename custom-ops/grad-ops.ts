/**
 * Shared by the backward fused ops (RMSNormGrad, SwiGLUGrad, RoPEGrad): `gradNode` emits one from a
 * gradient rule, `sameShape` checks that a gradient input has its forward value's shape.
 */
import type { Attrs } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import type { GradContext } from '../src/autodiff/types.js';
import { fail } from '../src/errors.js';
import { formatShape, type Dim } from '../src/ir/types.js';
import { invalid, ORTFUSE_DOMAIN, ORTFUSE_VERSION, sameDim, type FusedOpSchema } from '../src/fused/types.js';

/**
 * Call `schema` on `inputs` from rule context `g`: one ai.ortfuse node; output k gets the type of
 * forward input `typeOf[k]` (a gradient has its input's type and shape). The model gets the
 * ai.ortfuse import (a forward pass of ONNX ops only, e.g. RMSNormalization-23, has none); the body
 * is attached later by ensureFunctions like any fused op's.
 */
export function gradNode(g: GradContext, schema: FusedOpSchema, inputs: Value[], attrs: Attrs, typeOf: number[]): Value[] {
  const model = g.node.graph.model;
  const have = model.opsetImports.get(ORTFUSE_DOMAIN);
  if (have === undefined) model.opsetImports.set(ORTFUSE_DOMAIN, ORTFUSE_VERSION);
  else if (have !== ORTFUSE_VERSION) fail('unsupported', `the model imports ${ORTFUSE_DOMAIN} version ${have}; ortfuse writes version ${ORTFUSE_VERSION}`);
  const outs = g.op.call(schema.name, inputs, attrs, { domain: schema.domain, outputs: schema.outputs.length });
  outs.forEach((o, k) => {
    const t = g.node.inputs[typeOf[k]]?.type;
    if (t && !o.type) o.type = t;
  });
  return outs;
}

/** Two shapes that must be equal (a gradient and its forward value): the better-known one, or a clear error. */
export function sameShape(where: string, names: [string, string], a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b) return (a ?? b)?.slice();
  if (a.length !== b.length) invalid(where, `'${names[0]}' ${formatShape(a)} and '${names[1]}' ${formatShape(b)} must have the same shape`);
  return a.map((d, i) => sameDim(where, `'${names[0]}' ${formatShape(a)} and '${names[1]}' ${formatShape(b)} differ at axis ${i}`, d, b[i]));
}
