/**
 * mixed-precision — mark the fused ops whose GEMMs may take f16 operands (fp32 accumulation) for
 * `--precision mixed`:
 *
 *   SwiGLUMLP / SwiGLUMLPKeep / FusedLinearCrossEntropy(WithGrad) / Linear / CausalAttention
 *   →   the same node, precision="f16"
 *
 * The attribute is read by the ops' kernels and copied by their gradient rules to the backward ops;
 * activations, RMSNorm, RoPE, the attention's softmax, the loss and every other op stay fp32. The ops marked are
 * those whose schema declares the `precision` attribute (custom-ops/precision.ts PRECISION_ATTR), so
 * no op gets an attribute its checker would refuse. Runs on the fused forward model, before autodiff.
 */
import type { Model } from '../src/ir/graph.js';
import { makeAttr } from '../src/ir/builder.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { FusedOp } from '../src/fused/types.js';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { PRECISION_ATTR } from '../custom-ops/precision.js';

export const NAME = 'mixed-precision';

/**
 * Set precision="f16" on every ai.ortfuse node of `model`'s main graph whose op's schema (in `ops`)
 * declares the `precision` attribute — the ops with GEMMs that honour it (custom-ops/precision.ts);
 * returns how many nodes were marked. The list follows the registry: an op that declares the
 * attribute is marked, with no second list to keep in step.
 */
export function markMixedPrecision(model: Model, ops: readonly Pick<FusedOp, 'schema'>[] = FUSED_OPS): number {
  const accepts = new Set(
    ops.filter((o) => o.schema.domain === ORTFUSE_DOMAIN && o.schema.attributes.some((a) => a.name === PRECISION_ATTR.name)).map((o) => o.schema.name),
  );
  let marked = 0;
  for (const n of model.graph.nodes) {
    if (n.domain !== ORTFUSE_DOMAIN || !accepts.has(n.opType)) continue;
    n.setAttr(makeAttr(PRECISION_ATTR.name, 'f16'));
    marked++;
  }
  return marked;
}
