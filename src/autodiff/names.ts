/** Names of training-graph values (no imports: the browser bundle and both trainers read these). */

/** Prefix of gradient outputs: `grad.<parameter name>`. */
export const GRAD_PREFIX = 'grad.';
/** Prefix of accumulated-gradient inputs (gradient accumulation): `grad_in.<parameter name>`. */
export const GRAD_IN_PREFIX = 'grad_in.';
