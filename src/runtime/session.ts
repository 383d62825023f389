/**
 * Preparing a training run: fuse the forward model (unless told not to), lower what the target
 * cannot run on its device (webgpu: the loss ops, passes/lower-softmax-cross-entropy), build the
 * training-step graph (autodiff), attach the fused ops' portable bodies, and read the initial
 * parameter values.
 */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { DataType } from '../onnx/schema.js';
import { defaultPipeline, runPipeline, type PipelineReport } from '../pipeline.js';
import { buildTrainingGraph, trainingSignature } from '../autodiff/index.js';
import { ensureFunctions } from '../../custom-ops/functions.js';
import { newContext } from '../rewrite/pass.js';
import { lowerSoftmaxCrossEntropyPass } from '../../passes/lower-softmax-cross-entropy.js';

export interface PreparedTraining {
  /** The training-step graph (parameters, input_ids, labels → loss, grad.<p>). */
  train: Model;
  /** Initial parameter values, by parameter name. */
  initial: Map<string, Float32Array>;
  /** Size of the embedding table (largest valid token id + 1). */
  vocab: number;
  /** The optimize report when the model was fused. */
  report?: PipelineReport;
  parameters: string[];
}

/** Vocabulary size: rows of the table gathered by `input_ids`. */
export function vocabSize(model: Model): number {
  const ids = model.graph.inputs.find((v) => v.name === 'input_ids') ?? fail('invalid', "the model has no 'input_ids' input");
  for (const u of ids.uses())
    if (u.node.opType === 'Gather' && u.index === 1) {
      const table = u.node.input(0)!;
      const dims = table.initializer?.dims ?? table.tensorType?.shape;
      if (dims && typeof dims[0] === 'number') return dims[0];
    }
  const logits = model.graph.outputs.find((v) => v.name === 'logits')?.tensorType?.shape;
  const last = logits?.[logits.length - 1];
  if (typeof last === 'number') return last;
  return fail('invalid', "cannot tell the vocabulary size (no Gather of 'input_ids' from a known table, no logits output)");
}

export interface TrainingGraphOptions {
  fuse: boolean;
  target?: 'cpu' | 'webgpu';
  /** Recompute cheap forward values in the backward (default true; src/autodiff/recompute.ts). */
  recompute?: boolean;
}

/**
 * The training-step graph of `model` for `target` (the model itself is changed by the passes, not
 * by autodiff): fused unless `fuse` is false; for webgpu, SoftmaxCrossEntropyLoss / LogSoftmax +
 * NegativeLogLikelihoodLoss left in the forward (the unfused model, or a loss the fusion did not
 * match) are lowered BEFORE autodiff to ops ORT-web's WebGPU EP runs on the GPU, so the backward
 * is built from those ops too. Reads no weights.
 */
export function trainingGraph(model: Model, opts: TrainingGraphOptions): { train: Model; report?: PipelineReport } {
  let report: PipelineReport | undefined;
  if (opts.fuse) report = runPipeline(model, defaultPipeline(), { options: { training: true } });
  if (opts.target === 'webgpu') {
    const t0 = performance.now();
    const r = lowerSoftmaxCrossEntropyPass.run(model, newContext());
    report?.passes.push({ name: lowerSoftmaxCrossEntropyPass.name, modified: r.modified, counts: r.counts, ms: performance.now() - t0 });
  }
  const train = buildTrainingGraph(model, { recompute: opts.recompute ?? true });
  ensureFunctions(train, opts.target ?? 'cpu');
  return { train, report };
}

export function prepareTraining(model: Model, opts: TrainingGraphOptions): PreparedTraining {
  const vocab = vocabSize(model);
  for (const name of ['input_ids', 'labels', 'loss'])
    if (!model.graph.findValue(name)) fail('invalid', `the model must have inputs input_ids and labels and a 'loss' value (missing '${name}')`);
  // buildTrainingGraph works on a copy: the model keeps its initializers for the initial values.
  const { train, report } = trainingGraph(model, opts);
  const values = new Map<string, Float32Array>();
  for (const v of model.graph.initializers) if (v.initializer!.dtype === DataType.FLOAT) values.set(v.name, v.initializer!.toArray() as Float32Array);
  const sig = trainingSignature(train);
  const initial = new Map<string, Float32Array>();
  for (const p of sig.parameters) initial.set(p, values.get(p) ?? fail('invalid', `parameter '${p}' has no float32 initial value`));
  return { train, initial, vocab, report, parameters: sig.parameters };
}
