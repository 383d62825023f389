/**
 * Issue 5, acceptance 4 (kernel part): the WebGPU FusedLinearCrossEntropy kernel's rate against the
 * shared matmul on the same shapes (target ≥ 60%).
 *
 *   npx tsx bench/flce-webgpu.ts                       # small shapes, runs on SwiftShader here
 *   npx tsx bench/flce-webgpu.ts --preset qwen2-0.5b   # N = 8·512, H = 896, V = 151936 (GPU machine)
 *   options: --n --h --v --chunk --iters --warmup --json FILE
 *   --f16: precision 'f16' instead (mixed precision's lm_head: gemm_f16 on the tensor cores where the
 *          device has them, else gemm_f32 rounding operands to half): FLCE on gemm_f16's kernel plan
 *          (src/webgpu/gemm-f16-plan.ts f16Plan) and on the plan before session 13, and its stages at the
 *          chunk shape on both.
 *
 * FLCE does three GEMMs of 2·N·H·V flops each (logits x·Wᵀ, grad_x = dz·W, grad_W += dzᵀ·x) plus the
 * row-wise log-sum-exp; its rate is 6·N·H·V / time. The reference is the shared matmul on the logits
 * GEMM of the whole batch ([N, H]·[V, H]ᵀ, as an unfused graph would run it; when N·V floats exceed
 * one storage binding, the largest row count that fits). Also shown: each stage at the chunk shape
 * FLCE actually runs (shared matmul and gemmF32), to see where the time goes; FLCE with its default
 * GEMM (gemmF32) and with the shared matmul (`gemm: 'shared'`, the kernel before). Times are wall clock around queue completion,
 * averaged over --iters after --warmup runs.
 */
import fs from 'node:fs';
import { benchArgs, hasGpuDevice } from './cli-args.js';
import { fusedLinearCrossEntropy, gpuChunkRows } from '../custom-ops/fused-linear-cross-entropy/webgpu/flce.js';
import { rowProgram } from '../custom-ops/fused-linear-cross-entropy/webgpu/programs.js';
import { ligerChunkSize } from '../custom-ops/fused-linear-cross-entropy/schema.js';
import { GpuContext } from '../src/webgpu/context.js';
import { gemmF32 } from '../src/webgpu/gemm.js';
import { matmul, type MatmulArgs } from '../src/webgpu/matmul.js';
import { DAWN_F16_MATRIX_TOGGLES, requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
import { f16MatrixFor } from '../src/webgpu/f16-matrix.js';
import { gemmMixed } from '../src/webgpu/gemm-mixed.js';

const PRESETS: Record<string, { n: number; h: number; v: number }> = {
  small: { n: 256, h: 64, v: 4096 },
  'qwen2-0.5b': { n: 8 * 512, h: 896, v: 151936 },
  'qwen2-0.5b-8x256': { n: 8 * 256, h: 896, v: 151936 },
};

const opt = benchArgs();
const shape = { ...PRESETS[opt.preset ?? 'small'] };
if (!PRESETS[opt.preset ?? 'small']) throw new Error(`unknown preset ${opt.preset} (${Object.keys(PRESETS).join(', ')})`);
for (const k of ['n', 'h', 'v'] as const) if (opt[k]) shape[k] = Number(opt[k]);
const { n, h, v } = shape;
const chunkOpt = opt.chunk ? Number(opt.chunk) : undefined;
const iters = Number(opt.iters ?? (opt.preset ? 5 : 1)), warmup = Number(opt.warmup ?? 1);

// SwiftShader only where there is no GPU device node (this CPU-only machine, CI).
const hasGpu = hasGpuDevice();
if (!hasGpu) useSwiftShaderIfPresent();
const F16 = opt.f16 === 'true';
const device = await requestNodeDevice(F16 ? { dawnOptions: [DAWN_F16_MATRIX_TOGGLES], features: ['shader-f16', 'chromium-experimental-subgroup-matrix'] } : {});
const ctx = new GpuContext(device);
if (F16) {
  const f16 = await f16MatrixFor(device);
  if (f16.options) ctx.f16Matrix = f16.options;
  else console.error(`--f16: no tensor cores (${f16.why}): gemm_f32 with operands rounded to half`);
}
const chunk = chunkOpt ?? gpuChunkRows(n, v, h, device.limits.maxStorageBufferBindingSize);
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;

/** Fill a buffer with small pseudo-random values on the GPU side (no host upload of V·H floats). */
function filled(label: string, count: number, seed: number): GPUBuffer {
  const data = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 0.2;
  }
  return ctx.upload(label, data);
}

async function time(f: () => void): Promise<number> {
  for (let i = 0; i < warmup; i++) f();
  await ctx.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) f();
  await ctx.sync();
  return (performance.now() - t0) / iters;
}

const hidden = filled('hidden', n * h, 1), weight = filled('weight', v * h, 2);
const labels = ctx.upload('labels', BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7919) % v)));
const out = { gradHidden: ctx.buffer('gradHidden', n * h * 4), gradWeight: ctx.buffer('gradWeight', v * h * 4), loss: ctx.buffer('loss', 4), stats: ctx.buffer('stats', 16) };

const rows: { what: string; shape: string; ms: number; flops: number }[] = [];
if (F16) await f16Rows();
const tFlce = await time(() => fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out }));
rows.push({ what: 'FLCE fwd+bwd (3 gemmF32 GEMMs + LSE)', shape: `N=${n} H=${h} V=${v} chunk=${chunk}`, ms: tFlce, flops: 6 * n * h * v });
const tShared = await time(() => fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out, gemm: 'shared' }));
rows.push({ what: 'FLCE fwd+bwd, shared matmul GEMMs (before)', shape: `chunk=${chunk}`, ms: tShared, flops: 6 * n * h * v });

const maxRows = Math.floor(Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / (v * 4));
const refRows = Math.min(n, maxRows >= n ? n : Math.max(1, Math.floor(maxRows / 256) * 256));
const logitsFull = ctx.buffer('logits[N,V] (matmul reference only)', refRows * v * 4);
const mm = (a: MatmulArgs) => () => matmul(ctx, a);
const gm = (a: MatmulArgs) => () => gemmF32(ctx, a);
const tRef = await time(mm({ m: refRows, n: v, k: h, a: { buffer: hidden, ld: h }, b: { buffer: weight, ld: h }, c: { buffer: logitsFull, ld: v }, transB: true }));
rows.push({ what: 'matmul x·Wᵀ, whole batch (reference)', shape: `${refRows}x${v}x${h}`, ms: tRef, flops: 2 * refRows * h * v });
logitsFull.destroy();

// The stages at the chunk shape, as FLCE runs them (per chunk; FLCE runs ceil(N / chunk) of each).
const z = ctx.buffer('chunk logits', chunk * v * 4);
const stats = ctx.upload('stats', Float32Array.of(n, 0, 0, 0));
const rowLoss = ctx.buffer('rowLoss', n * 4);
const stages: [string, string, () => void, number][] = [
  ['  chunk: logits x·Wᵀ (NT)', `${chunk}x${v}x${h}`, mm({ m: chunk, n: v, k: h, a: { buffer: hidden, ld: h }, b: { buffer: weight, ld: h }, c: { buffer: z, ld: v }, transB: true }), 2 * chunk * h * v],
  ['  chunk: log-sum-exp + dz (rows)', `${chunk}x${v}`, () => ctx.run(rowProgram({ sg: ctx.subgroups, labelType: 'int64', hasBias: false, grads: true, gradMode: 'none', mean: true, rows: chunk, row0: 0, v, ignoreIndex: -100, labelSmoothing: 0 }), [z, labels, stats, rowLoss]), 0],
  ['  chunk: grad_x = dz·W (NN, split-K)', `${chunk}x${h}x${v}`, mm({ m: chunk, n: h, k: v, a: { buffer: z, ld: v }, b: { buffer: weight, ld: h }, c: { buffer: out.gradHidden, ld: h } }), 2 * chunk * h * v],
  ['  chunk: grad_W += dzᵀ·x (TN acc)', `${v}x${h}x${chunk}`, mm({ m: v, n: h, k: chunk, a: { buffer: z, ld: v }, b: { buffer: hidden, ld: h }, c: { buffer: out.gradWeight, ld: h }, transA: true, accumulate: true }), 2 * chunk * h * v],
];
stages.push(
  ['  chunk: logits x·Wᵀ (NT), gemmF32', `${chunk}x${v}x${h}`, gm({ m: chunk, n: v, k: h, a: { buffer: hidden, ld: h }, b: { buffer: weight, ld: h }, c: { buffer: z, ld: v }, transB: true }), 2 * chunk * h * v],
  ['  chunk: grad_x = dz·W (NN, split-K), gemmF32', `${chunk}x${h}x${v}`, gm({ m: chunk, n: h, k: v, a: { buffer: z, ld: v }, b: { buffer: weight, ld: h }, c: { buffer: out.gradHidden, ld: h } }), 2 * chunk * h * v],
  ['  chunk: grad_W += dzᵀ·x (TN acc), gemmF32', `${v}x${h}x${chunk}`, gm({ m: v, n: h, k: chunk, a: { buffer: z, ld: v }, b: { buffer: hidden, ld: h }, c: { buffer: out.gradWeight, ld: h }, transA: true, accumulate: true }), 2 * chunk * h * v],
);
for (const [what, s, f, flops] of stages) rows.push({ what, shape: s, ms: await time(f), flops });

// Other chunk sizes trade logits memory for GEMM efficiency: Liger's rule and 4x ours, for the record.
for (const [what, rowsPerChunk] of [["FLCE at Liger's chunk rule (for comparison)", ligerChunkSize(n, v, h)], ['FLCE with chunk x2 (for comparison)', chunk * 2], ['FLCE with chunk x4 (for comparison)', chunk * 4]] as const) {
  const c = Math.min(n, rowsPerChunk, maxRows);
  if (c === chunk) continue;
  const t = await time(() => fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: c, out }));
  rows.push({ what, shape: `chunk=${c}`, ms: t, flops: 6 * n * h * v });
}

/**
 * --f16: FLCE at precision 'f16' on gemm_f16's plan and on the legacy one, then its three GEMMs at
 * the chunk shape on each (rows first in the table; the fp32 rows follow).
 */
async function f16Rows(): Promise<void> {
  const plans = ctx.f16Matrix ? (['fill', 'legacy'] as const) : (['fill'] as const);
  const z = ctx.buffer('chunk logits (f16 stages)', chunk * v * 4);
  for (const plan of plans) {
    if (ctx.f16Matrix) ctx.f16Matrix = { ...ctx.f16Matrix, plan };
    const name = ctx.f16Matrix ? `gemm_f16, ${plan === 'fill' ? 'f16Plan' : 'legacy plan'}` : 'gemm_f32 rounding to half';
    const t = await time(() => fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out, precision: 'f16' }));
    rows.push({ what: `FLCE fwd+bwd, precision f16 (${name})`, shape: `N=${n} H=${h} V=${v} chunk=${chunk}`, ms: t, flops: 6 * n * h * v });
    const g = (a: MatmulArgs) => () => gemmMixed(ctx, a);
    const stages: [string, string, () => void][] = [
      ['logits x·Wᵀ (NT)', `${chunk}x${v}x${h}`, g({ m: chunk, n: v, k: h, a: { buffer: hidden, ld: h }, b: { buffer: weight, ld: h }, c: { buffer: z, ld: v }, transB: true })],
      ['grad_x = dz·W (NN)', `${chunk}x${h}x${v}`, g({ m: chunk, n: h, k: v, a: { buffer: z, ld: v }, b: { buffer: weight, ld: h }, c: { buffer: out.gradHidden, ld: h } })],
      ['grad_W += dzᵀ·x (TN acc)', `${v}x${h}x${chunk}`, g({ m: v, n: h, k: chunk, a: { buffer: z, ld: v }, b: { buffer: hidden, ld: h }, c: { buffer: out.gradWeight, ld: h }, transA: true, accumulate: true })],
    ];
    for (const [what, s, f] of stages) rows.push({ what: `  chunk, f16 (${name}): ${what}`, shape: s, ms: await time(f), flops: 2 * chunk * h * v });
  }
  if (ctx.f16Matrix) ctx.f16Matrix = { ...ctx.f16Matrix, plan: 'fill' };
  z.destroy();
  if (!ctx.f16Matrix || n % chunk || chunk % 128 || v % 128 || h % 128) return;
  // The matrix-staged kernel on f16 copies (src/webgpu/gemm-f16-direct.ts), checked against the default f16 path.
  const read = async () => ({ loss: await ctx.readF32(out.loss, 1), gx: await ctx.readF32(out.gradHidden, n * h), gw: await ctx.readF32(out.gradWeight, v * h) });
  fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out, precision: 'f16' });
  const ref = await read();
  fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out, precision: 'f16', gemm: 'staged' });
  const got = await read();
  const rel = (x: Float32Array, y: Float32Array) => Math.sqrt(x.reduce((s2, xi, i) => s2 + (xi - y[i]) ** 2, 0) / y.reduce((s2, yi) => s2 + yi * yi, 0));
  console.error(`FLCE f16, matrix-staged vs default: loss ${got.loss[0]} vs ${ref.loss[0]}, grad_x rel L2 ${rel(got.gx, ref.gx).toExponential(2)}, grad_W ${rel(got.gw, ref.gw).toExponential(2)}`);
  const t = await time(() => fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, chunkRows: chunk, out, precision: 'f16', gemm: 'staged' }));
  rows.push({ what: 'FLCE fwd+bwd, precision f16 (matrix-staged kernel on f16 copies)', shape: `N=${n} H=${h} V=${v} chunk=${chunk}`, ms: t, flops: 6 * n * h * v });
}

const ref = rows.find((r) => r.what.startsWith('matmul x·Wᵀ, whole batch'))!;
const refRate = ref.flops / ref.ms / 1e6;
const flce = rows.find((r) => r.what.startsWith('FLCE fwd+bwd (3 gemmF32'))!;
const table = [
  `FLCE WebGPU bench — ${info ? `${info.vendor} ${info.architecture} ${info.description}`.trim() : 'adapter'}; subgroups=${ctx.subgroups}; iters=${iters}`,
  '',
  '| what | shape | ms | GFLOP/s | % of matmul |',
  '|---|---|---|---|---|',
  ...rows.map((r) => {
    const rate = r.flops ? r.flops / r.ms / 1e6 : 0;
    return `| ${r.what} | ${r.shape} | ${r.ms.toFixed(2)} | ${r.flops ? rate.toFixed(rate < 100 ? 2 : 0) : '-'} | ${r.flops ? ((100 * rate) / refRate).toFixed(0) + '%' : '-'} |`;
  }),
  '',
  `FLCE rate / matmul rate = ${((100 * flce.flops) / flce.ms / 1e6 / refRate).toFixed(1)}% (target ≥ 60%; chunk = gpuChunkRows unless --chunk)`,
].join('\n');
console.log(table);
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ shape: { n, h, v, chunk }, subgroups: ctx.subgroups, adapter: info && { vendor: info.vendor, architecture: info.architecture, description: info.description }, rows }, null, 2));
process.exit(0);
