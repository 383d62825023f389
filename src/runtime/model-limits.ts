/**
 * Batch shapes a model records it can take, checked before the graph is prepared: an export with
 * static input shapes [B, T] runs only that shape, and a model that carries a RoPE table of P
 * positions (an initializer cos/sin cache: ONNX RotaryEmbedding's cos_cache input, or HF's
 * `cos_cached`) cannot take sequences longer than P. Dynamo exports compute cos/sin from the
 * positions and record neither; then only the memory estimate (./memory-estimate.ts) bounds seq.
 */
import { fail } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { GRAD_PREFIX } from '../autodiff/names.js';

/** Fail (usage) when the model is already a training-step graph (`optimize --train` output). */
export function checkNotTrainingGraph(model: Model): void {
  const grads = model.graph.outputs.filter((v) => v.name.startsWith(GRAD_PREFIX)).length;
  if (grads)
    fail('usage', `the model is already a training-step graph (${grads} '${GRAD_PREFIX}*' outputs, as \`ortfuse optimize --train\` writes): train the exported model it was made from`);
}

/** Positions of the model's RoPE table, when it has one as an initializer; undefined otherwise. */
export function maxPositions(model: Model): { positions: number; where: string } | undefined {
  for (const n of model.graph.nodes) {
    if (n.opType !== 'RotaryEmbedding') continue;
    const cos = n.input(1);
    const dims = cos?.initializer?.dims;
    if (cos && dims && dims.length === 2) return { positions: dims[0], where: `cos_cache '${cos.name}' of ${n.label}` };
  }
  for (const v of model.graph.initializers) {
    const dims = v.initializer!.dims;
    if (/(^|[._/])cos_cached?$/.test(v.name) && dims.length >= 2) return { positions: dims[dims.length - 2], where: `RoPE table '${v.name}'` };
  }
  return undefined;
}

/** Fail (usage) when the model cannot take batches of [batch, seq], naming what it records. */
export function checkBatchShape(model: Model, batch: number, seq: number): void {
  const shape = model.graph.inputs.find((v) => v.name === 'input_ids')?.tensorType?.shape;
  if (shape && shape.length === 2) {
    const [b, t] = shape;
    const bad = (typeof b === 'number' && b !== batch) || (typeof t === 'number' && t !== seq);
    if (bad)
      fail('usage', `the model was exported with a static input shape [${shape.join(', ')}] (input_ids): run it with ${typeof b === 'number' ? `--batch ${b} ` : ''}${typeof t === 'number' ? `--seq ${t}` : ''}, or export it with dynamic axes (got --batch ${batch} --seq ${seq})`.replace(' ,', ','));
  }
  const p = maxPositions(model);
  if (p && seq > p.positions) fail('usage', `--seq ${seq} is longer than the model's ${p.positions} positions (${p.where})`);
}
