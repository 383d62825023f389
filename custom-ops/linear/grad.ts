/**
 * Gradient of ai.ortfuse::Linear: one LinearGrad(x, w, dy) node serves all three inputs (math in
 * grad-schema.ts, body in function.ts), with the forward's trans_b and precision. It keeps x and w
 * from the forward; a gradient nothing reads (a frozen weight's, or db without a bias) is an
 * output no one reads, which the webgpu kernel does not compute.
 */
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradRule } from '../../src/autodiff/types.js';
import { gradNode } from '../grad-ops.js';
import { precisionAttrs } from '../precision.js';
import { linearGradSchema } from './grad-schema.js';

const emit = sharedGrads((g) =>
  gradNode(g, linearGradSchema, [g.x(0), g.x(1), g.dy()], { trans_b: g.node.attrInt('trans_b', 1), ...precisionAttrs(g.node) }, [0, 1, 2]));

export const linearGrad: GradRule = {
  save: { inputs: [0, 1] },
  grads: [0, 1, 2].map(emit),
};
