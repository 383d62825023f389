/**
 * ortfuse's library API.
 *
 * ```ts
 * import * as ort from 'onnxruntime-node';
 * import { optimize } from 'ortfuse';
 * const { bytes, report } = optimize('model.onnx');
 * const session = await ort.InferenceSession.create(bytes());
 * ```
 *
 * Training from code: `createTrainer` (src/training/). Nothing here imports onnxruntime-node,
 * onnxruntime-web or dawn.node: a backend loads its runtime when a trainer starts.
 */
import { fail, OrtfuseError } from './errors.js';
import { check } from './ir/checker.js';
import type { Graph, Model } from './ir/graph.js';
import { isSorted, toposort } from './ir/toposort.js';
import { modelGraphs } from './ir/walk.js';
import { loadBytes, loadFile, saveBytes, saveFile, type SaveOptions } from './onnx/io.js';
import { defaultPipeline, runPipeline, type PipelineReport } from './pipeline.js';
import type { Pass } from './rewrite/pass.js';
import { summarize, type ModelSummary } from './ir/summary.js';
import { ensureFunctions } from '../custom-ops/functions.js';

export { OrtfuseError, EXIT_CODES, type ErrorCode } from './errors.js';
export * from './ir/index.js';
export { DataType, dataTypeName } from './onnx/schema.js';
export type { SaveOptions } from './onnx/io.js';
export { runPipeline, defaultPipeline, cleanupPipeline, type PipelineReport, type PassReport, type PipelineOptions } from './pipeline.js';
export type { Pass, PassResult, PassContext, ExplainEntry } from './rewrite/pass.js';
export type { ModelSummary, ValueSummary, OpCount } from './ir/summary.js';
export * from './training/index.js';

/**
 * Load a model from a file (external data referenced, read lazily) or from bytes.
 * `baseDir` resolves external data locations of models given as bytes.
 */
export function load(source: string | Uint8Array, opts: { baseDir?: string } = {}): Model {
  if (typeof source === 'string') return loadFile(source);
  if (source instanceof Uint8Array) return loadBytes(source, { baseDir: opts.baseDir });
  return fail('usage', `load() takes a file path or bytes, not ${typeof source}`);
}

/** The paths `save` wrote. */
export interface SavedFiles {
  model: string;
  /** The external data file, when weights went to external data. */
  data?: string;
}

/** Serialize with every tensor embedded: bytes for `InferenceSession.create`. */
export function save(model: Model): Uint8Array;
/** Save atomically to `file` (external data beside it, see SaveOptions). */
export function save(model: Model, file: string, opts?: SaveOptions): SavedFiles;
export function save(model: Model, file?: string, opts: SaveOptions = {}): Uint8Array | SavedFiles {
  return file === undefined ? saveBytes(model) : saveFile(model, file, opts);
}

/** The op histogram, parameters, opsets, inputs and outputs of a model. */
export function inspect(model: Model): ModelSummary {
  return summarize(model);
}

export interface OptimizeOptions {
  /** The passes to run (default: `defaultPipeline({ mlp: fuseMlp })`). */
  passes?: Pass[];
  /** Also fuse each whole SwiGLU MLP into one SwiGLUMLP op (passes/fuse-swiglu-mlp.ts; off by default). */
  fuseMlp?: boolean;
  /** Also fuse each layer's causal attention into one CausalAttention op (passes/fuse-causal-attention.ts; off by default). */
  fuseAttention?: boolean;
  /** Also fuse each remaining projection by a parameter into one Linear op (passes/fuse-linear.ts; off by default). */
  fuseLinear?: boolean;
  /** Validate the input and the result with the checker (default true). */
  check?: boolean;
  /** Run the checker after every pass (slower; for debugging passes). */
  checkEachPass?: boolean;
  /** Collect explanations for rules that matched nothing. */
  explain?: boolean;
  /** Options passed to the passes. */
  options?: Record<string, unknown>;
  /**
   * A model for training: drop-logits removes a logits output that only sits beside a fused loss
   * (sets `options.training`). Default false: inference and eval keep every output.
   */
  training?: boolean;
  /**
   * Attach the fused ops' portable ONNX function bodies for this target after the passes, so any
   * ONNX Runtime runs the result: 'cpu' (default; Loop over row chunks) or 'webgpu' (Loop-free);
   * null: attach nothing.
   */
  target?: 'cpu' | 'webgpu' | null;
  /** Names the model in error messages (default: the file name, or 'model'). */
  source?: string;
}

export interface OptimizeReport extends PipelineReport {
  nodesBefore: number;
  nodesAfter: number;
  /** Whether the checker validated input and result. */
  checked: boolean;
  /** Milliseconds: input validation, passes, final check. */
  timings: { validate: number; passes: number; check: number };
}

export interface OptimizeResult {
  /** The optimized model (the same object when a Model was passed in: it is edited in place). */
  model: Model;
  report: OptimizeReport;
  /** The model as bytes with every tensor embedded, for `InferenceSession.create`. */
  bytes(): Uint8Array;
}

const allGraphs = (model: Model, functions = true): Graph[] => modelGraphs(model, { functions });

/** Nodes of the main graph and its subgraphs (function bodies not counted). */
const nodeCount = (m: Model) => allGraphs(m, false).reduce((s, g) => s + g.nodes.length, 0);

function prefixed<T>(source: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof OrtfuseError && !e.message.startsWith(source)) throw new OrtfuseError(e.code, `${source}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Validate a model before passes edit it: put nodes in topological order where they are not
 * (a cycle is an error naming its nodes), then run the checker.
 */
export function validate(model: Model, source = 'model'): void {
  prefixed(source, () => {
    for (const g of allGraphs(model)) if (!isSorted(g)) toposort(g);
  });
  check(model, source);
}

/**
 * Run the optimization pipeline (default: cleanup and fusions) on a model, a file or bytes.
 * A Model argument is edited in place.
 */
export function optimize(input: Model | Uint8Array | string, opts: OptimizeOptions = {}): OptimizeResult {
  const source = opts.source ?? (typeof input === 'string' ? input : 'model');
  const model = typeof input === 'string' || input instanceof Uint8Array ? load(input) : input;
  const doCheck = opts.check ?? true;
  const nodesBefore = nodeCount(model);
  let t = performance.now();
  if (doCheck) validate(model, source);
  const tValidate = performance.now() - t;
  t = performance.now();
  const pipeline = runPipeline(model, opts.passes ?? defaultPipeline({ mlp: opts.fuseMlp, attention: opts.fuseAttention, linear: opts.fuseLinear }), {
    explain: opts.explain, checkEachPass: opts.checkEachPass, options: opts.training ? { ...opts.options, training: true } : opts.options,
  });
  // Last, after every pass: a function's opset imports must equal the model's.
  if (opts.target !== null) ensureFunctions(model, opts.target ?? 'cpu');
  const tPasses = performance.now() - t;
  t = performance.now();
  if (doCheck) check(model, `${source} after optimization`);
  const report: OptimizeReport = {
    ...pipeline,
    nodesBefore,
    nodesAfter: nodeCount(model),
    checked: doCheck,
    timings: { validate: tValidate, passes: tPasses, check: performance.now() - t },
  };
  return { model, report, bytes: () => saveBytes(model) };
}
