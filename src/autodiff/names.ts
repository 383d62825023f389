/** Names of training-graph values (no imports: the browser bundle and both trainers read these). */

/** Prefix of gradient outputs: `grad.<parameter name>`. */
export const GRAD_PREFIX = 'grad.';
/** Prefix of accumulated-gradient inputs (gradient accumulation): `grad_in.<parameter name>`. */
export const GRAD_IN_PREFIX = 'grad_in.';
/**
 * The loss-scale input of a mixed-precision training graph (float32, shape []): the backward's seed,
 * so every `grad.<p>` is scaled by it while the loss output is not.
 */
export const LOSS_SCALE = 'loss_scale';
