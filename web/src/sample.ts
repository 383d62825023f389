/**
 * A short greedy sample: the exported forward model (with the trainer's current weights,
 * trainer.exportModel()) on onnxruntime-web's WebGPU EP, one token at a time — each step runs the
 * whole window (at most `window` tokens) and appends the argmax of the last position's logits.
 */
import type * as Ort from 'onnxruntime-web';
import { fail } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { saveBytes } from '../../src/onnx/io.js';
import { DataType } from '../../src/onnx/schema.js';

type OrtWeb = typeof Ort;

/** The logits output: 'logits', else the export's only float output of rank 3 ([batch, seq, vocab]). */
export function logitsOutput(m: Model): string | undefined {
  const outs = m.graph.outputs;
  if (outs.some((v) => v.name === 'logits')) return 'logits';
  const rank3 = outs.filter((v) => v.tensorType?.elemType === DataType.FLOAT && v.tensorType.shape?.length === 3);
  return rank3.length === 1 ? rank3[0].name : undefined;
}

/** Greedy continuation of `prompt` (token ids, at least 2): the `n` new ids. */
export async function greedySample(ort: OrtWeb, model: Model, prompt: number[], n: number, window = 64): Promise<number[]> {
  if (prompt.length < 2) fail('usage', 'the prompt must be at least 2 tokens long');
  const name = logitsOutput(model) ?? fail('invalid', 'the model has no logits output (a float [batch, seq, vocab] output): no sample');
  const session = await ort.InferenceSession.create(saveBytes(model), { executionProviders: ['webgpu'], logSeverityLevel: 3 });
  try {
    const ids = prompt.slice();
    for (let i = 0; i < n; i++) {
      const win = ids.slice(-window);
      const t = BigInt64Array.from(win, BigInt);
      const dims = [1, win.length];
      const out = await session.run({ input_ids: new ort.Tensor('int64', t, dims), labels: new ort.Tensor('int64', t.slice(), dims) }, [name]);
      const logits = out[name];
      const vocab = logits.dims[logits.dims.length - 1];
      const data = (await logits.getData()) as Float32Array;
      let best = 0;
      for (let v = 1, at = (win.length - 1) * vocab; v < vocab; v++) if (data[at + v] > data[at + best]) best = v;
      ids.push(best);
      logits.dispose();
    }
    return ids.slice(prompt.length);
  } finally {
    await session.release();
  }
}
