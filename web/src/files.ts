/**
 * The model a person picks: one .onnx file and its external data file(s), read into the IR with
 * the data given as bytes (src/onnx/external-bytes.ts), and checked to be a causal-LM training
 * export (what `ortfuse train` takes). Every problem is one line naming the file and what is wrong.
 */
import { fail } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { loadBytes } from '../../src/onnx/io.js';
import { logitsOutput } from './sample.js';

const bytesOf = async (f: Blob) => new Uint8Array(await f.arrayBuffer());
const names = (vs: { name: string }[]) => vs.map((v) => v.name).join(', ') || 'none';

/**
 * The training inputs and outputs the page needs: input_ids and labels in, a scalar loss out (named
 * 'loss', or the export's only scalar output) and, for the samples, logits.
 */
export function checkCausalLm(m: Model, source: string): { logits: boolean } {
  const g = m.graph;
  const inputs = g.inputs.filter((v) => !v.initializer);
  const hint = 'export a causal LM with labels, e.g. Qwen2ForCausalLM (models/export/export_default.py)';
  for (const want of ['input_ids', 'labels'])
    if (!inputs.some((v) => v.name === want)) fail('invalid', `${source} is not a causal-LM training export: it has no input '${want}' (inputs: ${names(inputs)}); ${hint}`);
  const scalar = g.outputs.filter((v) => v.name === 'loss' || v.tensorType?.shape?.length === 0);
  if (scalar.length === 0) fail('invalid', `${source} is not a causal-LM training export: no scalar loss output (outputs: ${names(g.outputs)}); ${hint}`);
  const extra = inputs.filter((v) => v.name !== 'input_ids' && v.name !== 'labels');
  if (extra.length) fail('unsupported', `${source}: inputs ${names(extra)} besides input_ids and labels; the page feeds only those two`);
  return { logits: logitsOutput(m) !== undefined };
}

/** Read the picked files: exactly one .onnx; the others are its external data, by file name. */
export async function readModelFiles(files: readonly File[]): Promise<{ model: Model; source: string; logits: boolean }> {
  const onnx = files.filter((f) => f.name.toLowerCase().endsWith('.onnx'));
  if (onnx.length !== 1)
    fail('usage', onnx.length === 0
      ? `no .onnx file among the picked files (${files.map((f) => f.name).join(', ') || 'none'}): pick the model's .onnx file and its external data file(s)`
      : `pick one .onnx file, not ${onnx.length} (${onnx.map((f) => f.name).join(', ')})`);
  const data = new Map<string, Uint8Array>();
  for (const f of files) if (f !== onnx[0]) data.set(f.name, await bytesOf(f));
  const source = onnx[0].name;
  const model = loadBytes(await bytesOf(onnx[0]), { source, externalData: data });
  return { model, source, ...checkCausalLm(model, source) };
}

/** The built-in tiny model (web/prepare.ts, served under data/). */
export async function builtinModel(): Promise<{ model: Model; source: string; logits: boolean }> {
  const r = await fetch('./data/tiny.onnx');
  if (!r.ok) fail('io', `GET data/tiny.onnx: ${r.status}`);
  const source = 'built-in tiny Qwen2';
  const model = loadBytes(new Uint8Array(await r.arrayBuffer()), { source });
  return { model, source, ...checkCausalLm(model, source) };
}
