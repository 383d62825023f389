/**
 * Peak RSS and time of one linear+cross-entropy loss AND its gradients (d hidden, d weight) on
 * onnxruntime-node's CPU EP, per variant, each in its own child process:
 *   - baseline:  a graph that only reads the inputs (the feeds' own memory)
 *   - unfused:   MatMul(hidden, Wᵀ) → SoftmaxCrossEntropyLoss, autodiff of the stock ops
 *   - recompute: FusedLinearCrossEntropy, backward-only rule (Loop that recomputes each chunk's logits)
 *   - liger:     FusedLinearCrossEntropyWithGrad, 'cpu' body (gradients in the forward chunk Loop)
 *   - liger-webgpu: the same op with the 'webgpu' body (8 unrolled chunks), run on the CPU EP
 * `chunk` (attribute chunk_size, 0 = Liger's rule) applies to recompute and liger.
 *
 *   npx tsx bench/train-flce-rss.ts [N H V] [--chunk C] [--variants a,b] [--out name]
 *
 * Writes bench/results/train-flce-rss-<N>x<H>x<V>.json (and prints a markdown table).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { ensureFunctions } from '../custom-ops/functions.js';
import { FUSED_INFER_RULES, FUSED_OPS } from '../custom-ops/registry.js';
import { addGradients, gradTable } from '../src/autodiff/index.js';
import { createModel, GraphBuilder, type Model } from '../src/ir/index.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';

const F = DataType.FLOAT;
const VARIANTS = ['baseline', 'unfused', 'recompute', 'liger', 'liger-webgpu'] as const;
type Variant = (typeof VARIANTS)[number];

function build(variant: Variant, h: number, v: number, chunk: number): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('hidden', F, ['N', h]);
  const w = b.input('weight', F, [v, h]);
  const y = b.input('labels', DataType.INT64, ['N']);
  if (variant === 'baseline') {
    b.output(b.op.Add(b.op.ReduceSum(x, { keepdims: 0 }), b.op.ReduceSum(w, { keepdims: 0 })), 'loss');
    return m;
  }
  const loss = variant === 'unfused'
    ? b.op.SoftmaxCrossEntropyLoss(b.op.MatMul(x, b.op.Transpose(w, { perm: [1, 0] })), y, { reduction: 'mean', ignore_index: -100 })
    : b.op.call('FusedLinearCrossEntropy', [x, w, null, y], { chunk_size: chunk, num_chunks: 8 }, { domain: 'ai.ortfuse' })[0];
  b.output(loss, 'loss');
  inferShapes(m, { rules: FUSED_INFER_RULES });
  const { grads } = addGradients(m.graph, { loss, wrt: [x, w], rules: gradTable(FUSED_OPS), inForward: variant !== 'recompute' });
  b.output(b.op.Identity(grads.get(x)!), 'grad_hidden');
  b.output(b.op.Identity(grads.get(w)!), 'grad_weight');
  ensureFunctions(m, variant === 'liger-webgpu' ? 'webgpu' : 'cpu');
  return m;
}

/** Deterministic pseudo-normal-ish values without a big JS temporary. */
function fill(n: number, seed: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

async function child(variant: Variant, n: number, h: number, v: number, chunk: number): Promise<void> {
  const bytes = saveBytes(build(variant, h, v, chunk));
  const feeds = {
    hidden: new ort.Tensor('float32', fill(n * h, 1, 1), [n, h]),
    weight: new ort.Tensor('float32', fill(v * h, 2, 0.05), [v, h]),
    labels: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 10 === 0 ? -100 : (i * 7919) % v)), [n]),
  };
  const before = process.resourceUsage().maxRSS / 1024;
  // ARENA=0: ORT without its CPU arena; ORT_OPT: graphOptimizationLevel
  const s = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, enableCpuMemArena: process.env.ARENA !== '0', ...(process.env.ORT_OPT ? { graphOptimizationLevel: process.env.ORT_OPT as 'disabled' } : {}) });
  const t0 = performance.now();
  const out = await s.run(feeds);
  const ms = performance.now() - t0;
  const gw = out.grad_weight?.data as Float32Array | undefined;
  let norm = 0;
  if (gw) for (let i = 0; i < gw.length; i++) norm += gw[i] * gw[i];
  console.log(JSON.stringify({
    variant, n, h, v, chunk, peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), feedsRssMB: Math.round(before), ms: Math.round(ms),
    loss: Number(out.loss.data[0]), gradWeightNorm: Math.sqrt(norm),
  }));
}

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv.splice(i, 2)[1] : undefined;
};
if (argv[0] === '--child') await child(argv[1] as Variant, Number(argv[2]), Number(argv[3]), Number(argv[4]), Number(argv[5]));
else {
  const chunk = Number(flag('--chunk') ?? 0);
  const variants = (flag('--variants')?.split(',') ?? VARIANTS) as Variant[];
  const outName = flag('--out');
  const [n, h, v] = argv.length >= 3 ? argv.slice(0, 3).map(Number) : [4096, 896, 151936];
  const self = fileURLToPath(import.meta.url);
  const rows: Record<string, unknown>[] = [];
  for (const variant of variants) {
    try {
      const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', variant, String(n), String(h), String(v), String(chunk)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      rows.push(JSON.parse(out.trim().split('\n').pop()!));
    } catch (e) {
      rows.push({ variant, n, h, v, chunk, error: (e as Error).message.split('\n')[0] });
    }
    console.log(JSON.stringify(rows[rows.length - 1]));
  }
  const root = path.resolve(path.dirname(self), '..');
  const file = path.join(root, 'bench/results', `${outName ?? `train-flce-rss-${n}x${h}x${v}`}.json`);
  const record = { command: `npx tsx bench/train-flce-rss.ts ${n} ${h} ${v}${chunk ? ` --chunk ${chunk}` : ''}`, logitsMB: Math.round((n * v * 4) / 2 ** 20), node: process.version, ort: ort.env.versions.node, rows };
  fs.writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`\n| variant | chunk | peak RSS MB | feeds MB | ms | loss |\n|---|---|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.variant} | ${r.chunk || 'liger'} | ${r.peakRssMB ?? r.error} | ${r.feedsRssMB ?? ''} | ${r.ms ?? ''} | ${r.loss ?? ''} |`);
}
