/**
 * Gradient of ai.ortfuse::RMSNorm (and of ONNX RMSNormalization-23 over the last axis: the op
 * record's standardGrads): one ai.ortfuse::RMSNormGrad(dy, x, weight) -> (dx, dweight) node serves
 * both input gradients (math in grad-schema.ts, body in grad-function.ts). rstd is recomputed from
 * the saved x inside the op; no [..., D] intermediate is kept from the forward pass. With a frozen
 * weight the node is still emitted and dweight goes unused.
 */
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradContext, GradRule } from '../../src/autodiff/types.js';
import type { Value } from '../../src/ir/graph.js';
import { DataType } from '../../src/onnx/schema.js';
import { gradNode } from '../grad-ops.js';
import { rmsNormGradSchema } from './grad-schema.js';

/** epsilon's default: RMSNorm's (schema.ts), or RMSNormalization-23's (1e-5, the ONNX spec). */
function epsilon(g: GradContext): number {
  return g.node.attrFloat('epsilon', g.node.opType === 'RMSNormalization' && g.node.domain !== 'ai.ortfuse' ? 1e-5 : 1e-6);
}

const emit = sharedGrads((g): Value[] =>
  gradNode(g, rmsNormGradSchema, [g.dy(), g.x(0), g.x(1)], {
    epsilon: { float: epsilon(g) },
    stash_type: g.node.attrInt('stash_type', DataType.FLOAT),
  }, [0, 1]));

export const rmsNormGrad: GradRule = {
  save: { inputs: [0, 1] },
  grads: [emit(0), emit(1)],
};

/** ONNX RMSNormalization-23 over the last axis is ai.ortfuse::RMSNorm (same attributes). */
export const rmsNormalizationGrad: GradRule = {
  save: rmsNormGrad.save,
  grads: rmsNormGrad.grads.map((fn) => fn && ((g, i) => {
    const axis = g.node.attrInt('axis', -1);
    if (axis !== -1 && axis !== g.rankX(0) - 1) g.unsupported(`RMSNormalization over axis ${axis} (only the last axis is differentiated)`);
    return fn(g, i);
  })),
};
