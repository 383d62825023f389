/**
 * mixed-precision — mark the fused ops whose GEMMs may take f16 operands (fp32 accumulation) for
 * `--precision mixed`:
 *
 *   SwiGLUMLP / SwiGLUMLPKeep / FusedLinearCrossEntropy(WithGrad) / Linear   →   the same node, precision="f16"
 *
 * The attribute is read by the ops' kernels and copied by their gradient rules to the backward ops;
 * activations, RMSNorm, RoPE, attention, the loss and every other op stay fp32. A node is marked only
 * where its op's schema (in `ops`, default the registry) declares the `precision` attribute, so a
 * build whose ops do not know it gets no attribute its checker would refuse: the count is then 0
 * and mixed precision is loss scaling alone. Runs on the fused forward model, before autodiff.
 */
import type { Model } from '../src/ir/graph.js';
import { makeAttr } from '../src/ir/builder.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { FusedOp } from '../src/fused/types.js';
import { FUSED_OPS } from '../custom-ops/registry.js';

export const NAME = 'mixed-precision';

/** The attribute and its value (STRING) that ask an op for f16 GEMM operands. */
export const PRECISION_ATTR = 'precision';
export const PRECISION_F16 = 'f16';

/** Op types (domain ai.ortfuse) whose GEMMs may round their operands to f16. */
export const MIXED_PRECISION_OPS: readonly string[] = ['SwiGLUMLP', 'SwiGLUMLPKeep', 'FusedLinearCrossEntropy', 'FusedLinearCrossEntropyWithGrad', 'Linear'];

/**
 * Set precision="f16" on every node of MIXED_PRECISION_OPS in `model`'s main graph whose schema in
 * `ops` accepts the attribute; returns how many nodes were marked.
 */
export function markMixedPrecision(model: Model, ops: readonly Pick<FusedOp, 'schema'>[] = FUSED_OPS): number {
  const accepts = new Set(
    ops
      .filter((o) => o.schema.domain === ORTFUSE_DOMAIN && MIXED_PRECISION_OPS.includes(o.schema.name))
      .filter((o) => o.schema.attributes.some((a) => a.name === PRECISION_ATTR && a.type === 'STRING'))
      .map((o) => o.schema.name),
  );
  let marked = 0;
  for (const n of model.graph.nodes) {
    if (n.domain !== ORTFUSE_DOMAIN || !accepts.has(n.opType)) continue;
    n.setAttr(makeAttr(PRECISION_ATTR, PRECISION_F16));
    marked++;
  }
  return marked;
}
