/**
 * The CausalAttention WGSL kernels (custom-ops/causal-attention/webgpu: batched GEMMs and row
 * kernels) at the 0.5B step's shapes: time of the forward (o, lse) and of the backward (dq, dk,
 * dv), and their rate in the flash-attention convention (causal forward 2·B·Hq·T²·D FLOPs,
 * backward 2.5× that; the GEMMs skip whole tiles of the masked half, not the diagonal's), with a
 * float64 check of sampled rows of every output (o, lse, dq: query rows; dk, dv: key rows, summed
 * over the query heads of their group).
 *
 *   npx tsx bench/attention-webgpu.ts                        # small shapes, SwiftShader here
 *   node dist/bench/attention-webgpu.js --preset qwen2-0.5b  # B 8, Hq 14, Hkv 2, T 512, D 64 (GPU machine)
 *   options: --b --hq --hkv --t --d --iters --warmup --json FILE
 *            --precision f16   GEMM operands rounded to half: on the tensor cores where the device
 *                              offers them (gemm_f16), else gemm_f32 with round_f16; check within 5e-3
 *
 * Times are wall clock around queue completion, averaged over --iters after --warmup runs.
 */
import fs from 'node:fs';
import { benchArgs, hasGpuDevice } from './cli-args.js';
import { causalAttentionBackward, causalAttentionForward } from '../custom-ops/causal-attention/webgpu/attention.js';
import { GpuContext } from '../src/webgpu/context.js';
import { DAWN_F16_MATRIX_TOGGLES, requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
import { f16MatrixFor } from '../src/webgpu/f16-matrix.js';
import { randn, rng } from '../src/random.js';

const PRESETS: Record<string, { b: number; hq: number; hkv: number; t: number; d: number }> = {
  small: { b: 1, hq: 4, hkv: 2, t: 128, d: 64 },
  'qwen2-0.5b': { b: 8, hq: 14, hkv: 2, t: 512, d: 64 },
  'qwen2-0.5b-8x1024': { b: 8, hq: 14, hkv: 2, t: 1024, d: 64 },
};

const opt = benchArgs();
const preset = PRESETS[opt.preset ?? 'small'];
if (!preset) throw new Error(`unknown preset ${opt.preset} (${Object.keys(PRESETS).join(', ')})`);
const s = { ...preset };
for (const k of ['b', 'hq', 'hkv', 't', 'd'] as const) if (opt[k]) s[k] = Number(opt[k]);
const { b, hq, hkv, t, d } = s;
const scale = 1 / Math.sqrt(d);
const iters = Number(opt.iters ?? (opt.preset ? 10 : 2)), warmup = Number(opt.warmup ?? 2);
const precision = opt.precision === 'f16' ? 'f16' : undefined;
if (opt.precision && opt.precision !== 'f16' && opt.precision !== 'fp32') throw new Error(`--precision ${opt.precision}: fp32 or f16`);

if (!hasGpuDevice()) useSwiftShaderIfPresent();
const device = await requestNodeDevice(precision ? { dawnOptions: [DAWN_F16_MATRIX_TOGGLES], features: ['shader-f16', 'chromium-experimental-subgroup-matrix'] } : {});
const ctx = new GpuContext(device);
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
let gemmPath = 'gemm_f32';
if (precision) {
  const m = await f16MatrixFor(device);
  ctx.f16Matrix = m.options;
  gemmPath = m.options ? `gemm_f16 (tensor cores, ${m.options.config.M}x${m.options.config.N}x${m.options.config.K})` : `gemm_f32 + round_f16 (${m.why})`;
}

const r = rng(1);
const q = randn(r, b * hq * t * d), k = randn(r, b * hkv * t * d), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
const bufs = { q: ctx.upload('q', q), k: ctx.upload('k', k), v: ctx.upload('v', v) };
const dims = { b, hq, hkv, t, d, scale, precision } as const;

/** Mean ms of `f` (which returns the buffers it made: destroyed once the queue is done with them). */
async function time(f: () => GPUBuffer[]): Promise<number> {
  const made: GPUBuffer[] = [];
  for (let i = 0; i < warmup; i++) made.push(...f());
  await ctx.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) made.push(...f());
  await ctx.sync();
  const ms = (performance.now() - t0) / iters;
  for (const x of made) x.destroy();
  return ms;
}

// The outputs checked (one run), then the timed runs.
const fwd = causalAttentionForward(ctx, { ...dims, ...bufs });
const dBuf = ctx.upload('do', dout);
const bwd = causalAttentionBackward(ctx, { ...dims, ...bufs, o: fwd.o, lse: fwd.lse, dout: dBuf });
const got = {
  o: await ctx.readF32(fwd.o, b * hq * t * d), lse: await ctx.readF32(fwd.lse, b * hq * t),
  dq: await ctx.readF32(bwd.dq, b * hq * t * d), dk: await ctx.readF32(bwd.dk, b * hkv * t * d), dv: await ctx.readF32(bwd.dv, b * hkv * t * d),
};
const tFwd = await time(() => Object.values(causalAttentionForward(ctx, { ...dims, ...bufs })));
const tBwd = await time(() => Object.values(causalAttentionBackward(ctx, { ...dims, ...bufs, o: fwd.o, lse: fwd.lse, dout: dBuf })));

// float64 rows: p[u] for query row (bi, h, tq), and the row's dp·p sum.
const g = hq / hkv;
const at = (bi: number, h: number, row: number) => ((bi * hq + h) * t + row) * d;
const kat = (bi: number, kh: number, row: number) => ((bi * hkv + kh) * t + row) * d;
function probs(bi: number, h: number, tq: number): { p: Float64Array; lse: number; dp: Float64Array; dot: number } {
  const kh = Math.floor(h / g), sc = new Float64Array(tq + 1), dp = new Float64Array(tq + 1);
  let mx = -Infinity;
  for (let u = 0; u <= tq; u++) {
    let acc = 0, dacc = 0;
    for (let e = 0; e < d; e++) { acc += q[at(bi, h, tq) + e] * k[kat(bi, kh, u) + e]; dacc += dout[at(bi, h, tq) + e] * v[kat(bi, kh, u) + e]; }
    sc[u] = acc * scale; dp[u] = dacc; mx = Math.max(mx, sc[u]);
  }
  let sum = 0;
  for (let u = 0; u <= tq; u++) sum += Math.exp(sc[u] - mx);
  const lse = mx + Math.log(sum), p = sc.map((x) => Math.exp(x - lse));
  let dot = 0;
  for (let u = 0; u <= tq; u++) dot += p[u] * dp[u];
  return { p, lse, dp, dot };
}
const err = { o: 0, lse: 0, dq: 0, dk: 0, dv: 0 };
const rel = (name: keyof typeof err, gotv: ArrayLike<number>, off: number, want: Float64Array) => {
  let n2 = 0, w2 = 0;
  for (let e = 0; e < want.length; e++) { n2 += (gotv[off + e] - want[e]) ** 2; w2 += want[e] ** 2; }
  err[name] = Math.max(err[name], Math.sqrt(n2 / Math.max(w2, 1e-300)));
};
const pick = rng(2);
for (let i = 0; i < 12; i++) {
  const bi = Math.floor(pick() * b), h = Math.floor(pick() * hq), row = i === 0 ? t - 1 : Math.floor(pick() * t);
  const { p, lse, dp, dot } = probs(bi, h, row);
  const kh = Math.floor(h / g);
  const o = new Float64Array(d), dqw = new Float64Array(d);
  for (let u = 0; u <= row; u++)
    for (let e = 0; e < d; e++) { o[e] += p[u] * v[kat(bi, kh, u) + e]; dqw[e] += p[u] * (dp[u] - dot) * scale * k[kat(bi, kh, u) + e]; }
  rel('o', got.o, at(bi, h, row), o);
  rel('lse', got.lse, (bi * hq + h) * t + row, Float64Array.of(lse));
  rel('dq', got.dq, at(bi, h, row), dqw);
  // Key row `row` of kv head kh: every query row ≥ it of the group's heads.
  const dkw = new Float64Array(d), dvw = new Float64Array(d);
  for (let hh = kh * g; hh < (kh + 1) * g; hh++)
    for (let tq = row; tq < t; tq++) {
      const pr = probs(bi, hh, tq);
      const ds = pr.p[row] * (pr.dp[row] - pr.dot) * scale;
      for (let e = 0; e < d; e++) { dkw[e] += ds * q[at(bi, hh, tq) + e]; dvw[e] += pr.p[row] * dout[at(bi, hh, tq) + e]; }
    }
  rel('dk', got.dk, kat(bi, kh, row), dkw);
  rel('dv', got.dv, kat(bi, kh, row), dvw);
}

const fwdFlops = 2 * b * hq * t * t * d; // 4·B·Hq·D·T²/2: two causal GEMMs
const rows = [
  { what: 'forward (o, lse)', ms: tFwd, flops: fwdFlops },
  { what: 'backward (dq, dk, dv)', ms: tBwd, flops: 2.5 * fwdFlops },
];
const table = [
  `CausalAttention WebGPU kernels — ${info ? `${info.vendor} ${info.architecture} ${info.description}`.trim() : 'adapter'}; B ${b} Hq ${hq} Hkv ${hkv} T ${t} D ${d}; ${precision ?? 'fp32'} on ${gemmPath}; iters=${iters}`,
  '',
  '| what | ms | TFLOP/s (flash-attention convention) |',
  '|---|---|---|',
  ...rows.map((x) => `| ${x.what} | ${x.ms.toFixed(3)} | ${(x.flops / x.ms / 1e9).toFixed(2)} |`),
  '',
  `float64 check of 12 sampled rows, worst relative L2: ${Object.entries(err).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ')}`,
].join('\n');
console.log(table);
const tolerance = precision ? 5e-3 : 1e-4;
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify({ shape: s, precision: precision ?? 'fp32', gemm: gemmPath, adapter: info && { vendor: info.vendor, architecture: info.architecture, description: info.description }, rows, sampledError: err }, null, 2));
process.exit(Object.values(err).every((e) => e < tolerance) ? 0 : 1);
