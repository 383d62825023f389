/// <reference types="@webgpu/types" />
/**
 * The training page: pick an exported model (an .onnx file and its external data) or the built-in
 * tiny one, and a text file (default: the bundled Moby Dick excerpt); choose full or LoRA
 * fine-tuning, the batch shape, steps and learning rate; train on WebGPU with the library's
 * training API (createTrainer, backend 'webgpu', this page's onnxruntime-web) — the same pipeline,
 * batches, schedule and AdamW as `ortfuse train` — with the live loss chart and GPU memory; a
 * greedy sample before and after training; download the adapter (PEFT) or the weights.
 *
 * Query (sets the controls): ?model=tiny|files&mode=full|lora&lora=SPEC&steps=N&batch=B&seq=T&lr=X
 * &seed=S&warmup=W&prompt=TEXT&sample=N&auto=1 (auto: train on load, built-in model and text).
 * Results for tests: window.ortfuse (PageState).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { createTrainer, type Trainer } from '../../src/training/trainer.js';
import { textBatches } from '../../src/training/data.js';
import { parseLoraSpec } from '../../src/params/lora-config.js';
import { memoryMeter } from '../../src/runtime/webgpu/memory.js';
import { describeDevice } from '../../src/runtime/webgpu/adapter.js';
import type { Batch } from '../../src/data/batches.js';
import { drawLossChart } from './chart.js';
import { builtinModel, readModelFiles } from './files.js';
import { greedySample } from './sample.js';
import { showDownloads } from './download.js';
import { pageTokenizer } from './tokenizer.js';

interface PageRecord { step: number; loss: number; gradNorm: number; lr: number; ms: number; gpuLiveMiB: number }

/** What the page did, for tests: window.ortfuse. */
interface PageState {
  records: PageRecord[];
  done: boolean;
  error?: string;
  model?: string;
  tokenizer?: string;
  samples: { before?: number[]; after?: number[] };
  /** Loss of the first training batch after training (trainer.evaluate), for comparing a reloaded adapter. */
  firstBatchLoss?: number;
  downloads: string[];
}

const state: PageState = { records: [], done: false, samples: {}, downloads: [] };
(window as unknown as { ortfuse: PageState }).ortfuse = state;
/** For tests: the ids the page's tokenizer for a model of vocabulary `vocab` gives `text`. */
(window as unknown as { ortfuseTokenize: unknown }).ortfuseTokenize = async (vocab: number, text: string) => (await pageTokenizer(vocab)).encode(text);

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const q = new URLSearchParams(location.search);
for (const [k, id] of [['steps', 'steps'], ['batch', 'batch'], ['seq', 'seq'], ['lr', 'lr'], ['seed', 'seed'], ['warmup', 'warmup'], ['prompt', 'prompt'], ['sample', 'sample-tokens'], ['lora', 'lora-spec'], ['mode', 'mode']] as const)
  if (q.has(k)) input(id).value = q.get(k)!;
if (q.get('model') === 'files') input('use-files').checked = true;
const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

function num(id: string, what: string, ok: (x: number) => boolean): number {
  const v = Number(input(id).value);
  if (!Number.isFinite(v) || !ok(v)) throw new Error(`${what}: '${input(id).value}' is not valid`);
  return v;
}

const say = (s: string) => { $('status').textContent = s; };

async function run(): Promise<void> {
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing): use a browser with WebGPU enabled');
  const meter = memoryMeter(); // before ORT creates its device, so its buffers are counted too
  ort.env.wasm.numThreads = 1;
  const int = (id: string, what: string, min: number) => num(id, what, (x) => Number.isInteger(x) && x >= min);
  const o = { steps: int('steps', 'steps', 1), batch: int('batch', 'batch', 1), seq: int('seq', 'seq', 2), lr: num('lr', 'learning rate', (x) => x > 0), seed: int('seed', 'seed', 0) };
  const warmup = input('warmup').value === '' ? undefined : int('warmup', 'warm-up steps', 0);
  const loraSpec = $<HTMLSelectElement>('mode').value === 'lora' ? input('lora-spec').value : undefined;

  say('reading the model');
  const picked = input('use-files').checked;
  const modelFiles = Array.from(input('model-files').files ?? []);
  if (picked && modelFiles.length === 0) throw new Error('no model picked: choose the .onnx file and its external data file(s), or the built-in tiny model');
  const m = picked ? await readModelFiles(modelFiles) : await builtinModel();
  state.model = m.source;
  // adapter_config.json's base_model_name_or_path: the picked file's stem.
  const lora = loraSpec === undefined ? undefined : { ...parseLoraSpec(loraSpec), baseModel: m.source.replace(/\.onnx$/i, '') };
  const textFile = input('text-file').files?.[0];
  const text = textFile ? await textFile.text() : await (await fetch('./data/text.txt')).text();
  if (text.length === 0) throw new Error(`${textFile?.name ?? 'the text'} is empty`);

  say('building the training step (fuse, autodiff, stage plan) and the sessions');
  const trainer = await createTrainer(m.model, { backend: 'webgpu', ort, lr: o.lr, steps: o.steps, warmup, batch: o.batch, seq: o.seq, lora });
  try {
    const device = ort.env.webgpu.device as unknown as GPUDevice | undefined;
    $('adapter').textContent = device ? describeDevice(device).name : 'WebGPU';
    const tok = await pageTokenizer(trainer.vocab);
    state.tokenizer = tok.name;
    $('tokenizer').textContent = `${tok.name} (model vocabulary ${trainer.vocab})`;
    $('trained').textContent = `${trainer.parameterCount.toLocaleString()} values in ${trainer.parameterNames.length} tensors${lora ? ` (LoRA ${loraSpec})` : ''}`;
    const data = await textBatches(text, { tokenizer: tok, batch: o.batch, seq: o.seq, seed: o.seed, vocab: trainer.vocab });

    const prompt = tok.encode(input('prompt').value);
    const sampleN = int('sample-tokens', 'sample length', 0);
    const sample = async (which: 'before' | 'after') => {
      if (!m.logits || sampleN === 0) return;
      say(`sampling (${which} training)`);
      const ids = await greedySample(ort as never, await trainer.exportModel(), prompt, sampleN);
      state.samples[which] = ids;
      $(`sample-${which}`).textContent = JSON.stringify(tok.show(ids));
    };
    if (!m.logits) $('sample-before').textContent = 'the model has no logits output: no samples';
    await sample('before');

    say('training');
    let first: Batch | undefined;
    for (let i = 0; i < o.steps; i++) {
      const b = data.train.next().value!;
      first ??= b;
      const r = await trainer.step(b);
      state.records.push({ step: r.step, loss: r.loss, gradNorm: r.gradNorm, lr: r.lr, ms: r.ms, gpuLiveMiB: meter.live / 2 ** 20 });
      $('step').textContent = `${r.step} / ${o.steps} (${r.ms.toFixed(0)} ms, ${r.tokensPerSecond.toFixed(0)} tok/s)`;
      $('loss').textContent = r.loss.toFixed(4);
      $('mem').textContent = `${MiB(meter.live)} MiB live (peak ${MiB(meter.peak)} MiB, ${meter.buffers} buffers; ORT's pool + the trainer's)`;
      drawLossChart($<HTMLCanvasElement>('chart'), state.records.map((x) => x.loss), o.steps);
    }
    state.firstBatchLoss = await trainer.evaluate([first!]);
    $('first-loss').textContent = state.firstBatchLoss.toFixed(6);
    await sample('after');

    say('preparing the downloads');
    await offerDownloads(trainer, lora !== undefined);
    say('done');
  } finally {
    await trainer.dispose();
  }
}

/** LoRA: the adapter (PEFT's two files) and the merged weights; full: the weights. Safetensors under the torch names, as the CLI writes. */
async function offerDownloads(trainer: Trainer, lora: boolean): Promise<void> {
  const files = new Map<string, Uint8Array>(lora ? await trainer.adapterFiles() : []);
  files.set('model.safetensors', await trainer.weightsFile({ merge: lora }));
  showDownloads($('downloads'), files);
  state.downloads = [...files.keys()];
}

function start(): void {
  $<HTMLButtonElement>('start').disabled = true;
  $('error').textContent = '';
  Object.assign(state, { records: [], done: false, error: undefined, samples: {}, downloads: [], firstBatchLoss: undefined });
  for (const id of ['sample-before', 'sample-after', 'first-loss', 'step', 'loss']) $(id).textContent = '–';
  $('downloads').replaceChildren();
  run().catch((e: Error) => {
    state.error = e.message;
    $('error').textContent = e.message;
    console.error(e);
    say('failed');
  }).finally(() => {
    state.done = true;
    $<HTMLButtonElement>('start').disabled = false;
  });
}

$('start').addEventListener('click', start);
if (q.get('auto') === '1') start();
