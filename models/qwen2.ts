/**
 * The Qwen2ForCausalLM training graph (input_ids, labels) -> (loss, logits), node for node as
 * torch 2.11's dynamo exporter writes it (see DESIGN.md, "What the exporters produce", and the
 * real exports in models/fixtures): embedding Gather, RoPE tables from MatMul(inv_freq,
 * positions), a boolean causal mask, decoder layers with decomposed attention, final RMSNorm,
 * lm_head MatMul (transposed tied embedding), label shift and SoftmaxCrossEntropyLoss.
 */
import { fail } from '../src/errors.js';
import { DataType } from '../src/onnx/schema.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import type { Model, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { headDim, parseConfig, type Qwen2Config } from './config.js';
import { decoderLayer, rmsNorm, type LayerContext } from './qwen2-layer.js';
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
 * by tensor and the returned model's initializers reference it (save with `saveExternalModel`).
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
  const b = new GraphBuilder(model.graph);
  const op = b.op;
  const { batch, seq } = DIM_NAMES;
  const inputIds = b.input('input_ids', DataType.INT64, [batch, seq]);
  const labels = b.input('labels', DataType.INT64, [batch, seq]);

  const params = new Map<string, Value>();
  for (const p of qwen2Parameters(c)) params.set(p.name, b.initializer(p.name, writer.tensor(p)));
  const w = (name: string): Value => params.get(name) ?? fail('invalid', `internal: no parameter '${name}'`);

  const hd = headDim(c);
  const ctx: LayerContext = { b, config: c, w, ints: (v) => b.constant(v), float: (v) => scalar(b, v) };
  const ints = ctx.ints;

  const embeds = op.Gather(w('model.embed_tokens.weight'), inputIds, { axis: 0 });

  // Positions: arange(seq), position_ids = arange[None].
  const seqLen = op.Gather(op.Shape(inputIds), ints(1), { axis: 0 });
  const zero = b.constant(0, { name: 'zero' });
  const one = b.constant(1, { name: 'one' });
  const cachePos = op.Range(zero, seqLen, one);
  const positionIds = op.Unsqueeze(cachePos, ints([0]));

  // Rotary tables: freqs = (inv_freq[None, :, None] @ position_ids[:, None, :]).T; emb = cat(freqs, freqs).
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => 1 / Math.pow(c.rope_theta, (2 * i) / hd));
  const invFreqV = b.initializer('model.rotary_emb.inv_freq', Tensor.from(DataType.FLOAT, [1, hd / 2, 1], invFreq));
  const posF = op.Cast(op.Unsqueeze(positionIds, ints([1])), { to: DataType.FLOAT });
  const freqs = op.Transpose(op.MatMul(invFreqV, posF), { perm: [0, 2, 1] });
  const emb = op.Concat(freqs, freqs, { axis: -1 });
  const cos = op.Unsqueeze(op.Cos(emb), ints([1]));
  const sin = op.Unsqueeze(op.Sin(emb), ints([1]));

  // Causal mask (bool [batch, 1, seq, seq]): kv_idx <= q_idx.
  const mask2d = op.LessOrEqual(op.Unsqueeze(cachePos, ints([0])), op.Unsqueeze(cachePos, ints([1])));
  const batchLen = op.Gather(op.Shape(inputIds), ints([0]), { axis: 0 });
  const seqLen1 = op.Unsqueeze(seqLen, ints([0]));
  const maskShape = op.Concat(batchLen, ints([1]), seqLen1, seqLen1, { axis: 0 });
  const mask = op.Expand(op.Unsqueeze(mask2d, ints([0, 1])), maskShape);

  let h = embeds;
  for (let l = 0; l < c.num_hidden_layers; l++) h = decoderLayer(ctx, l, h, { cos, sin, mask });
  h = rmsNorm(ctx, h, w('model.norm.weight'));

  const lmHead = c.tie_word_embeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
  const logits = op.MatMul(h, op.Transpose(lmHead, { perm: [1, 0] }));

  // Label shift: labels = pad(labels, (0, 1), -100)[..., 1:]; cross entropy over [batch*seq, vocab].
  const padded = op.Pad(labels, ints([0, 0, 0, 1]), b.constant(-100, { name: 'ignore_index' }));
  const shifted = op.Slice(padded, ints([1]), ints([Number.MAX_SAFE_INTEGER]), ints([1]));
  const flatLabels = op.Reshape(shifted, ints([-1]));
  const flatLogits = op.Reshape(logits, ints([-1, c.vocab_size]));
  const lossV =
    loss === 'sce'
      ? op.SoftmaxCrossEntropyLoss(flatLogits, flatLabels, { ignore_index: -100, reduction: 'mean' })
      : op.NegativeLogLikelihoodLoss(op.LogSoftmax(flatLogits, { axis: 1 }), flatLabels, { ignore_index: -100, reduction: 'mean' });
  const lossOut = b.output(lossV, 'loss');
  lossOut.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [] };
  const logitsOut = b.output(logits, 'logits');
  logitsOut.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [batch, seq, c.vocab_size] };
  return model;
}

function scalar(b: GraphBuilder, v: number): Value {
  return b.constant(v, { dtype: DataType.FLOAT, dims: [] });
}
