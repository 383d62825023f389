/**
 * Errors ortfuse reports to users: one line that names the problem (file, node, op, shape).
 * `code` selects the CLI exit code; the stack trace is only shown with --verbose.
 */
export type ErrorCode =
  | 'io' // file missing, unreadable, or not writable
  | 'parse' // bytes are not a valid ONNX model
  | 'invalid' // model structure is broken (cycle, undefined input, ...)
  | 'unsupported' // valid ONNX that ortfuse does not handle (unknown op domain, ...)
  | 'usage' // bad command-line arguments or API options
  | 'runtime' // a failure while running a model (ONNX Runtime refused or failed)
  | 'diverged' // training stopped: the loss or a gradient became NaN or Inf
  | 'resources'; // the work would not fit: memory estimate over what the machine or adapter has

export class OrtfuseError extends Error {
  override readonly name = 'OrtfuseError';
  constructor(readonly code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Exit codes of the CLI, one per error code (0 = success, 1 = unexpected internal error). */
export const EXIT_CODES: Record<ErrorCode, number> = {
  usage: 2,
  io: 3,
  parse: 4,
  invalid: 5,
  unsupported: 6,
  runtime: 7,
  diverged: 8,
  resources: 9,
};

/** Exit codes of `ortfuse train` stopped by a signal after saving a checkpoint (128 + signal number). */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

export function fail(code: ErrorCode, message: string, cause?: unknown): never {
  throw new OrtfuseError(code, message, cause === undefined ? undefined : { cause });
}
