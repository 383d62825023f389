/**
 * Gradient of ai.ortfuse::SwiGLU, y = g·σ(g)·u: one ai.ortfuse::SwiGLUGrad(dy, gate, up) ->
 * (dgate, dup) node serves both input gradients (math in grad-schema.ts, body in
 * grad-function.ts). Only the two pre-activations are saved; the sigmoid is recomputed (as Liger).
 */
import { sharedGrads } from '../../src/autodiff/shared.js';
import type { GradRule } from '../../src/autodiff/types.js';
import { gradNode } from '../grad-ops.js';
import { swigluGradSchema } from './grad-schema.js';

const emit = sharedGrads((g) => gradNode(g, swigluGradSchema, [g.dy(), g.x(0), g.x(1)], {}, [0, 1]));

export const swigluGrad: GradRule = {
  save: { inputs: [0, 1] },
  grads: [emit(0), emit(1)],
};
