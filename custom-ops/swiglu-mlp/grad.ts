/**
 * Gradient of ai.ortfuse::SwiGLUMLP: one ai.ortfuse::SwiGLUMLPGrad(x, w_gate, w_up, w_down, dy) ->
 * (dx, dw_gate, dw_up, dw_down) node serves all four inputs (math in grad-schema.ts, body in
 * grad-function.ts). Only x (and the weights, which live anyway) is saved: the backward recomputes
 * the gate and up projections (two more GEMMs) instead of keeping two [..., I] activations.
 */
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradRule } from '../../src/autodiff/types.js';
import { gradNode } from '../grad-ops.js';
import { swigluMlpGradSchema } from './grad-schema.js';

const emit = sharedGrads((g) => gradNode(g, swigluMlpGradSchema, [g.x(0), g.x(1), g.x(2), g.x(3), g.dy()], {}, [0, 1, 2, 3]));

export const swigluMlpGrad: GradRule = {
  save: { inputs: [0, 1, 2, 3] },
  grads: [emit(0), emit(1), emit(2), emit(3)],
};
