/// <reference types="@webgpu/types" />
/**
 * The training page: loads the build-time training graph and parameters (web/prepare.ts), trains
 * on the bundled Moby Dick excerpt with the bytes tokenizer and the same batches, schedule and
 * AdamW as `ortfuse train` (src/runtime/train.ts), draws the loss and shows GPU memory in use.
 *
 * Query: ?steps=N&batch=B&seq=T&lr=X&seed=S&warmup=W&auto=1 (auto: start without the button).
 * The graph is specialised to the build's batch shape (manifest.shape, ORTFUSE_WEB_SHAPE): batch and
 * seq default to it, and another shape is refused with the way to rebuild.
 * Results for tests: window.ortfuse = { records, done, error }.
 */
import * as ort from 'onnxruntime-web/webgpu';
import { batches, split } from '../../src/data/batches.js';
import { memoryMeter } from '../../src/runtime/webgpu/memory.js';
import { WebGpuTrainer, type ParamSpec } from '../../src/runtime/webgpu/trainer.js';
import type { StagePlan } from '../../src/runtime/webgpu/stage-split.js';
import { FUSED_OPS } from '../../custom-ops/registry.js';
import { drawLossChart } from './chart.js';

interface Manifest {
  seed: number;
  chars: number;
  params: { name: string; dims: number[]; offset: number; length: number }[];
  shape: { batch: number; seq: number };
  stages?: { plan: StagePlan; segments: { offset: number; length: number }[] };
}

interface PageRecord {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  ms: number;
  gpuLiveMiB: number;
}

const state: { records: PageRecord[]; done: boolean; error?: string } = { records: [], done: false };
(window as unknown as { ortfuse: typeof state }).ortfuse = state;

const $ = (id: string) => document.getElementById(id)!;
const q = new URLSearchParams(location.search);
const opt = (k: string, d: number) => (q.has(k) ? Number(q.get(k)) : d);
const o = { steps: opt('steps', 50), lr: opt('lr', 3e-3), seed: opt('seed', 5) };
const warmup = opt('warmup', Math.min(10, Math.floor(o.steps / 10)));
const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

async function fetchBytes(name: string): Promise<ArrayBuffer> {
  const r = await fetch(`./data/${name}`);
  if (!r.ok) throw new Error(`GET data/${name}: ${r.status}`);
  return r.arrayBuffer();
}

async function train(): Promise<void> {
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  // Before ORT creates its device, so its buffers are counted too.
  const meter = memoryMeter();
  ort.env.wasm.numThreads = 1;
  $('status').textContent = 'loading model';
  const [model, params, manifest, text] = await Promise.all([
    fetchBytes('train.onnx'), fetchBytes('params.bin'),
    fetchBytes('manifest.json').then((b) => JSON.parse(new TextDecoder().decode(b)) as Manifest),
    fetchBytes('text.txt').then((b) => new TextDecoder().decode(b)),
  ]);
  const segBytes = manifest.stages && new Uint8Array(await fetchBytes('segments.bin'));
  const stages = manifest.stages && { plan: manifest.stages.plan, segments: manifest.stages.segments.map((s) => segBytes!.subarray(s.offset, s.offset + s.length)) };
  const { batch, seq } = manifest.shape;
  if (opt('batch', batch) !== batch || opt('seq', seq) !== seq)
    throw new Error(`this build's training graph is specialised to batches of ${batch}x${seq}, not ${opt('batch', batch)}x${opt('seq', seq)}: rebuild with ORTFUSE_WEB_SHAPE=${opt('batch', batch)}x${opt('seq', seq)}`);
  const values = new Float32Array(params);
  const specs: ParamSpec[] = manifest.params.map((p) => ({ name: p.name, dims: p.dims, value: values.subarray(p.offset, p.offset + p.length) }));
  $('status').textContent = 'creating the session';
  const trainer = await WebGpuTrainer.create(ort as never, { model: new Uint8Array(model), params: specs, stages, shape: manifest.shape }, {
    optimizer: { lr: o.lr, weightDecay: 0.01, maxGradNorm: 1 },
    schedule: { lr: o.lr, warmupSteps: warmup, totalSteps: o.steps },
  }, FUSED_OPS);
  const info = (trainer.ctx.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  $('adapter').textContent = (info && `${info.vendor} ${info.architecture} ${info.description}`.trim()) || 'WebGPU';
  // Bytes tokenizer (UTF-8 bytes), as getTokenizer('bytes') in src/data/tokenizer.ts.
  const ids = Array.from(new TextEncoder().encode(text));
  const stream = batches(split(ids, seq).train, batch, seq, o.seed);
  $('status').textContent = 'training';
  try {
    for (let i = 0; i < o.steps; i++) {
      const r = await trainer.train(stream.next().value!);
      state.records.push({ ...r, gpuLiveMiB: meter.live / 2 ** 20 });
      $('step').textContent = `${r.step} / ${o.steps} (${r.ms.toFixed(0)} ms)`;
      $('loss').textContent = r.loss.toFixed(4);
      $('mem').textContent = `${MiB(meter.live)} MiB live (peak ${MiB(meter.peak)} MiB, ${meter.buffers} buffers; ORT's pool + ours), of which the trainer's: ${MiB(trainer.residentBytes)} MiB (parameters, AdamW moments, norm scratch)`;
      drawLossChart($('chart') as HTMLCanvasElement, state.records.map((x) => x.loss), o.steps);
    }
  } finally {
    await trainer.release();
  }
  $('status').textContent = 'done';
}

function start(): void {
  ($('start') as HTMLButtonElement).disabled = true;
  train().catch((e: Error) => {
    state.error = e.message;
    $('error').textContent = e.stack ?? e.message;
    $('status').textContent = 'failed';
  }).finally(() => { state.done = true; });
}

$('start').addEventListener('click', start);
if (q.get('auto') === '1') start();
