/** The built-in model (`ortfuse optimize --demo`, `ortfuse train` without a model, the training API's examples): the tiny Qwen2 training graph (models/qwen2.ts). */
import { buildQwen2 } from '../../models/qwen2.js';
import { TINY } from '../../models/config.js';
import type { Model } from '../ir/graph.js';

/** Qwen2 `tiny` (vocab 512, hidden 64, 2 layers) with seeded random weights, loss and logits outputs. */
export function demoModel(): Model {
  return buildQwen2(TINY, { seed: 0 });
}
