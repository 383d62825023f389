/**
 * The Qwen2ForCausalLM training graph (input_ids, labels) -> (loss, logits), node for node as
 * torch 2.11's dynamo exporter writes it from transformers 5.17 (docs/architecture.md, "What the
 * exporters produce"; the real exports in models/fixtures): opset 20, IR 10, graph `main_graph`, inputs
 * int64 [batch, seq], parameters as initializers under their module names, constants as
 * deduplicated initializers. Prelude (positions, packed-sequence causal mask, RoPE tables) in
 * qwen2-mask.ts, decoder layers in qwen2-layer.ts; here the final RMSNorm, lm_head MatMul with
 * the transposed (tied) weight, and the loss tail.
 */
import { DataType } from '../src/onnx/schema.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import type { Model, Value } from '../src/ir/graph.js';
import { parseConfig, type Qwen2Config } from './config.js';
import { BuildContext, INT64_MAX } from './qwen2-context.js';
import { decoderLayer, rmsNorm } from './qwen2-layer.js';
import { prelude } from './qwen2-mask.js';
import { qwen2Parameters, WeightWriter, type ExternalOption, type WeightsOption } from './weights.js';

/** Options of `buildQwen2`. */
export interface BuildOptions {
  /**
   * 'random' (default): seeded HF-like init; or a map parameter name -> values (e.g. a fixture's
   * initializers; every parameter of `qwen2Parameters(config)` must be present).
   */
  weights?: 'random' | ReadonlyMap<string, Float32Array> | Record<string, Float32Array>;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** 'sce' (default): SoftmaxCrossEntropyLoss; 'nll': LogSoftmax + NegativeLogLikelihoodLoss. */
  loss?: 'sce' | 'nll';
  /** Stream the weights to `dir/file` as they are generated instead of holding them. */
  external?: ExternalOption;
}

/** The exporter's names for the dynamic dimensions of input_ids and labels. */
export const DIM_NAMES = { batch: 'batch', seq: 'seq' } as const;

/** Opset and IR version of torch 2.11's dynamo export. */
export const EXPORT_OPSET = 20;
export const EXPORT_IR_VERSION = 10;

/**
 * Build the Qwen2 training graph. With `external`, weights are written to the data file tensor
 * by tensor and the returned model's initializers reference it (save with `saveFile(model, file, { referenceInPlace: true, externalData: false })`).
 */
export function buildQwen2(config: Qwen2Config, opts: BuildOptions = {}): Model {
  const c = parseConfig(config, 'buildQwen2 config');
  const weights: WeightsOption =
    opts.weights === undefined || opts.weights === 'random'
      ? { kind: 'random', seed: opts.seed ?? 0 }
      : { kind: 'map', values: opts.weights };
  const writer = new WeightWriter(weights, c.initializer_range, opts.external);
  try {
    return build(c, writer, opts.loss ?? 'sce');
  } finally {
    writer.close();
  }
}

function build(c: Qwen2Config, writer: WeightWriter, loss: 'sce' | 'nll'): Model {
  const model = createModel({ opset: EXPORT_OPSET, irVersion: EXPORT_IR_VERSION, producer: 'pytorch' });
  model.producerVersion = '2.11.0';
  model.graph.name = 'main_graph';
  const b = new GraphBuilder(model.graph);
  const op = b.op;
  const { batch, seq } = DIM_NAMES;
  const inputIds = b.input('input_ids', DataType.INT64, [batch, seq]);
  const labels = b.input('labels', DataType.INT64, [batch, seq]);

  const params = new Map<string, Value>();
  for (const p of qwen2Parameters(c)) params.set(p.name, b.initializer(p.name, writer.tensor(p)));
  const ctx = new BuildContext(b, c, params);
  const lmHead = ctx.w('lm_head.weight');
  const embedTable = c.tie_word_embeddings ? lmHead : ctx.w('model.embed_tokens.weight');

  const pre = prelude(ctx, inputIds, labels, embedTable);
  let h = pre.embeds;
  for (let l = 0; l < c.num_hidden_layers; l++) h = decoderLayer(ctx, l, h, pre);
  h = rmsNorm(ctx, h, ctx.w('model.norm.weight'));
  const logits = op.MatMul(h, op.Transpose(lmHead, { perm: [1, 0] }));

  const lossV = loss === 'sce' ? sceLoss(ctx, logits, labels) : nllLoss(ctx, logits, labels);
  b.output(lossV, 'loss').type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [] };
  b.output(logits, 'logits').type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [batch, seq, c.vocab_size] };
  return model;
}

/** transformers' ForCausalLMLoss: labels = pad(labels, (0, 1), -100)[..., 1:]; mean CE over kept tokens. */
function sceLoss(ctx: BuildContext, logits: Value, labels: Value): Value {
  const op = ctx.op;
  const padded = op.Pad(labels, ctx.ints([0, 0, 0, 1]), ctx.int(-100), { mode: 'constant' });
  const shifted = op.Slice(padded, ctx.ints([1]), ctx.ints([INT64_MAX]), ctx.ints([1]), ctx.ints([1]));
  const flatLogits = op.Reshape(logits, ctx.ints([-1, ctx.config.vocab_size]), { allowzero: 1 });
  const flatLabels = op.Reshape(shifted, ctx.ints([-1]), { allowzero: 1 });
  return op.SoftmaxCrossEntropyLoss(flatLogits, flatLabels, { ignore_index: -100, reduction: 'mean' });
}

/** The fixture's explicit variant: nll_loss(log_softmax(logits[:, :-1]), labels[:, 1:]). */
function nllLoss(ctx: BuildContext, logits: Value, labels: Value): Value {
  const op = ctx.op;
  const head = op.Slice(logits, ctx.ints([0]), ctx.ints([-1]), ctx.ints([1]), ctx.ints([1]));
  const shifted = op.Slice(labels, ctx.ints([1]), ctx.ints([INT64_MAX]), ctx.ints([1]), ctx.ints([1]));
  const logp = op.Reshape(op.LogSoftmax(head, { axis: -1 }), ctx.ints([-1, ctx.config.vocab_size]), { allowzero: 1 });
  const flatLabels = op.Reshape(shifted, ctx.ints([-1]), { allowzero: 1 });
  return op.NegativeLogLikelihoodLoss(logp, flatLabels, { ignore_index: -100, reduction: 'mean' });
}

/**
 * The model's graph with every weight in /dev/null (never-touched zero pages, written nowhere):
 * for tests and benches that need the structure of a large model, not its values.
 */
export function buildQwen2Structure(config: Qwen2Config): Model {
  const specs = qwen2Parameters(config);
  const size = (d: number[]) => d.reduce((a, b) => a * b, 1);
  const zeros = new Float32Array(Math.max(...specs.map((p) => size(p.dims))));
  const weights = new Map(specs.map((p) => [p.name, zeros.subarray(0, size(p.dims))]));
  return buildQwen2(config, { weights, external: { dir: '/dev', file: 'null' } });
}
