/**
 * Peak RSS of one linear+cross-entropy loss on onnxruntime-node's CPU EP, fused body vs the
 * unfused MatMul + SoftmaxCrossEntropyLoss graph. Each variant runs in its own child process
 * (peak RSS is per process). Not a test: a quick check by hand; bench/loss-memory.ts and
 * bench/train-flce-rss.ts are the measurements (bench/results/).
 *
 *   npx tsx custom-ops/fused-linear-cross-entropy/measure-rss.ts [N H V]
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { saveBytes } from '../../src/onnx/io.js';
import { f32, fusedModel, i64, randn, rng } from '../testing.js';
import { fusedLinearCrossEntropy } from './function.js';

const F = DataType.FLOAT;
/** 'cpu-auto' / 'cpu-<chunk_size>' / 'webgpu-<num_chunks>'. */
type Variant = string;

function build(variant: Variant, h: number, v: number): Uint8Array {
  const ins = [{ name: 'hidden', elem: F, shape: ['N', h] }, { name: 'weight', elem: F, shape: [v, h] }, null,
    { name: 'labels', elem: DataType.INT64, shape: ['N'] }];
  if (variant.startsWith('cpu') || variant.startsWith('webgpu')) {
    const k = Number(variant.split('-')[1]) || 0;
    return saveBytes(fusedModel(fusedLinearCrossEntropy, ins, variant.startsWith('cpu') ? { chunk_size: k } : { num_chunks: k }, variant.startsWith('cpu') ? 'cpu' : 'webgpu',
      { output: { name: 'loss', elem: F, shape: [] } }));
  }
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('hidden', F, ['N', h]);
  const w = b.input('weight', F, [v, h]);
  const y = b.input('labels', DataType.INT64, ['N']);
  const loss = variant === 'unfused'
    ? b.op.SoftmaxCrossEntropyLoss(b.op.MatMul(x, b.op.Transpose(w, { perm: [1, 0] })), y, { reduction: 'mean', ignore_index: -100 })
    : b.op.ReduceSum(x, { keepdims: 0 });
  b.output(loss, 'loss');
  return saveBytes(m);
}

async function child(variant: Variant, n: number, h: number, v: number): Promise<void> {
  const r = rng(1);
  const feeds = { hidden: f32(randn(r, n * h), [n, h]), weight: f32(randn(r, v * h, 0.1), [v, h]),
    labels: i64(Array.from({ length: n }, (_, i) => (i % 10 === 0 ? -100 : (i * 7919) % v)), [n]) };
  const before = process.resourceUsage().maxRSS;
  const s = await ort.InferenceSession.create(build(variant, h, v), { graphOptimizationLevel: 'disabled' });
  const { loss } = await s.run(feeds);
  const t0 = performance.now();
  await s.run(feeds);
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ variant, n, h, v, peakRssMB: process.resourceUsage().maxRSS / 1024, beforeSessionMB: before / 1024, ms, loss: loss.data[0] }));
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === '--child') await child(rest[0] as Variant, Number(rest[1]), Number(rest[2]), Number(rest[3]));
else {
  const [n, h, v] = mode ? [Number(mode), Number(rest[0]), Number(rest[1])] : [4096, 64, 32000];
  const self = fileURLToPath(import.meta.url);
  for (const variant of ['baseline', 'unfused', 'cpu-auto', 'cpu-64', 'cpu-256', 'cpu-1024', 'webgpu-8', 'webgpu-32']) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', variant, String(n), String(h), String(v)], { encoding: 'utf8' });
    console.log(out.trim().split('\n').pop());
  }
}
