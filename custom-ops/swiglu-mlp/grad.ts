/**
 * Gradients of ai.ortfuse::SwiGLUMLP and SwiGLUMLPKeep: one backward node serves all four inputs
 * (math in grad-schema.ts, bodies in grad-function.ts).
 *
 * The autodiff swaps each SwiGLUMLP on a differentiated path for SwiGLUMLPKeep (the in-forward
 * hook), whose outputs g and u SwiGLUMLPKeepGrad(x, w_gate, w_up, w_down, dy, g, u) reads: two
 * [..., I] tensors kept from the forward instead of two GEMMs in the backward. The recomputing
 * form, SwiGLUMLPGrad(x, w_gate, w_up, w_down, dy), keeps only x; the memory planner switches
 * layers back to it (record.ts `recomputingForm`, src/autodiff/recompute.ts recomputeInOps), and
 * it is what autodiff without in-forward hooks emits. Every form carries the forward node's
 * `precision` (the swaps keep attributes; the backward node is given it here).
 */
import { replaceForwardNode } from '../../src/autodiff/in-forward.js';
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradRule } from '../../src/autodiff/types.js';
import { ORTFUSE_DOMAIN } from '../../src/fused/types.js';
import { gradNode } from '../grad-ops.js';
import { nodePrecision, precisionAttrs } from '../precision.js';
import { swigluMlpGradSchema, swigluMlpKeepGradSchema } from './grad-schema.js';
import { swigluMlpKeepSchema } from './schema.js';

const weights = [0, 1, 2, 3];
const emit = sharedGrads((g) => gradNode(g, swigluMlpGradSchema, [...weights.map((i) => g.x(i)), g.dy()], precisionAttrs(g.node), weights));
const emitKeep = sharedGrads((g) => gradNode(g, swigluMlpKeepGradSchema, [...weights.map((i) => g.x(i)), g.dy(), g.y(1), g.y(2)], precisionAttrs(g.node), weights));

export const swigluMlpGrad: GradRule = {
  save: { inputs: weights },
  grads: weights.map(emit),
  inForward(node) {
    const [, gate, up] = swigluMlpKeepSchema.check(node.inputs.map((v) => v?.tensorType), { precision: nodePrecision(node) }, node.label);
    return replaceForwardNode(node, swigluMlpKeepSchema.name, ORTFUSE_DOMAIN, [{ name: 'gate', type: gate }, { name: 'up', type: up }]);
  },
};

export const swigluMlpKeepGrad: GradRule = {
  save: { inputs: weights, outputs: [1, 2] },
  grads: weights.map(emitKeep),
};
