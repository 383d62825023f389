/**
 * Issue 12, acceptance 4: our WGSL GEMMs at the training step's shapes (Qwen2-0.5B, M = B·T =
 * 4096 / 2048; src/webgpu/gemm.ts) against onnxruntime-web's MatMul (WebGPU EP, GPU-resident
 * tensors) and torch.matmul on the same GPU, in one call. TFLOP/s = 2·M·N·K / time.
 *
 *   node --liftoff-only dist/bench/matmul-webgpu.js [--out DIR] [--reps 20] [--torch bench/matmul_torch.py] [--python python3]
 *
 * Three child processes (each its own device): `ours` — the shared matmul of ./matmul.ts, gemm_f32,
 * gemm_f16 on subgroup matrices with fp32 operands (vec4 staging where the operands allow, and the
 * scalar-staged kernel) or f16 operands in memory; GPU time from timestamp
 * queries around `reps` back-to-back calls (src/webgpu/timing.ts); each variant checked first on
 * 256 sampled outputs against float64 dot products (relative L2; f16 operands round to 2^-11).
 * `ort` — a model of 8 MatMuls of the same GPU-resident inputs, fp32 and fp16; wall time of `reps`
 * runs until the queue is done, per MatMul (so ORT's host work per kernel is in it, as in the step).
 * ORT-web's MatMul has no transposed forms: it runs the NN product of the same M, N, K. `torch` —
 * bench/matmul_torch.py (fp32 with TF32 off and on, fp16, bf16; CUDA events).
 *
 * --f32-sweep: only gemm_f32, in each K-walk variant (src/webgpu/gemm.ts F32Variant: K step,
 * register prefetch, double buffering), with K split 2-8 where K ≥ 2048, and the default with the
 * options aimed at the 128×128 kernel's limits, alone and combined: fragPrefetch (fragments read
 * one K index ahead), compact (a warp owns a 32×64 block), vec4 (global loads a vec4 at a time),
 * wideN / wideM (128×256 / 256×128 tiles where their grid fills the GPU).
 *
 * --f16-sweep: only gemm_f16's vec4 kernel (f32 operands in memory), in each tile of F16Variant:
 * subgroup grid, each subgroup's block of result matrices, K step; each checked as above first;
 * and the default tile on the kernel choice and K split before session 13 (f16Plan 'legacy').
 *
 * --only-f16 also runs gemm_f16 on the plan before session 13 ('legacy plan') and the experimental
 * kernel without workgroup memory (src/webgpu/gemm-f16-direct.ts), on converted and on f16 operands.
 *
 * --flce: the lm_head's three GEMMs per 1024-row chunk (FusedLinearCrossEntropy at V = 151,936)
 * join the cases (operand buffers of 155M elements: GPU machines only, or with --scale).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

type Form = 'NT' | 'NN' | 'TN';
interface Case { form: Form; m: number; n: number; k: number; what: string }
interface Row { form: Form; m: number; n: number; k: number; impl: string; ms?: number; err?: number; error?: string }

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

/** --scale S divides every size by S (a smoke run on SwiftShader: --scale 32). */
const SCALE = Number(arg('scale', '1'));
/** --only-f16: just our subgroup-matrix kernels (no ORT, no torch). */
const ONLY_F16 = process.argv.includes('--only-f16');
/** --f16-lean (with --only-f16): gemm_f16's default and its per-subgroup blocks layout only. */
const F16_LEAN = process.argv.includes('--f16-lean');
/** --f32-sweep: gemm_f32's variants side by side (no ORT, no torch). */
const F32_SWEEP = process.argv.includes('--f32-sweep');
/** --f16-sweep: gemm_f16's vec4 kernel in each tile variant (src/webgpu/gemm-f16-plan.ts F16Variant; no ORT, no torch). */
const F16_SWEEP = process.argv.includes('--f16-sweep');
/** --flce: the lm_head's GEMM shapes (FusedLinearCrossEntropy, 1024-row chunks) as well. */
const FLCE = process.argv.includes('--flce');

/** The step's GEMMs: per projection (output N, input K) forward X·Wᵀ, input grad dY·W, weight grad dYᵀ·X. */
function cases(): Case[] {
  const proj: [string, number, number][] = [['q, o', 896, 896], ['k, v', 128, 896], ['gate, up', 4864, 896], ['down', 896, 4864]];
  const out: Case[] = [];
  const d = (x: number) => x / SCALE;
  for (const [w, no, ki] of proj) out.push({ form: 'NT', m: d(4096), n: d(no), k: d(ki), what: `${w}: Y = X·Wᵀ` });
  for (const [w, no, ki] of proj) out.push({ form: 'NN', m: d(4096), n: d(ki), k: d(no), what: `${w}: dX = dY·W` });
  for (const [w, no, ki] of proj) out.push({ form: 'TN', m: d(no), n: d(ki), k: d(4096), what: `${w}: dW = dYᵀ·X` });
  for (const [w, no, ki] of proj) out.push({ form: 'NT', m: d(2048), n: d(no), k: d(ki), what: `${w}: Y = X·Wᵀ (8×256)` });
  if (FLCE) {
    // The lm_head's three GEMMs per 1024-row chunk of FusedLinearCrossEntropy (V = 151,936, H = 896).
    out.push({ form: 'NT', m: d(1024), n: d(151936), k: d(896), what: 'lm_head: z = x·Wᵀ (1024-row chunk)' });
    out.push({ form: 'NN', m: d(1024), n: d(896), k: d(151936), what: 'lm_head: dx = dz·W (1024-row chunk)' });
    out.push({ form: 'TN', m: d(151936), n: d(896), k: d(1024), what: 'lm_head: dW = dzᵀ·x (1024-row chunk)' });
  }
  return out;
}

/** Elements of the largest A, B and C among the cases (every operand buffer is this long). */
function maxElements(): number {
  return Math.max(...cases().flatMap((c) => [c.m * c.k, c.k * c.n, c.m * c.n]));
}

/** Random f16 bit patterns in ±[0.25, 1) and their values. */
function halfData(r: () => number, n: number): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(n), values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = r() < 0.5 ? 1 : 0, e = r() < 0.5 ? 13 : 14, mant = Math.floor(r() * 1024);
    bits[i] = (s << 15) | (e << 10) | mant;
    values[i] = (s ? -1 : 1) * 2 ** (e - 15) * (1 + mant / 1024);
  }
  return { bits, values };
}

/** Relative L2 error of 256 sampled entries of C against float64 dot products of the host operands. */
function sampledError(c: Case, A: Float32Array, B: Float32Array, C: Float32Array, r: () => number): number {
  let num = 0, den = 0;
  for (let s = 0; s < 256; s++) {
    const i = Math.floor(r() * c.m), j = Math.floor(r() * c.n);
    let ref = 0;
    for (let p = 0; p < c.k; p++) {
      const a = c.form === 'TN' ? A[p * c.m + i] : A[i * c.k + p];
      const b = c.form === 'NT' ? B[j * c.k + p] : B[p * c.n + j];
      ref += a * b;
    }
    num += (C[i * c.n + j] - ref) ** 2;
    den += ref * ref;
  }
  return Math.sqrt(num / den);
}

async function childOurs(reps: number): Promise<Row[]> {
  const { requestNodeAdapter, requestNodeDevice, useSwiftShaderIfPresent, DAWN_F16_MATRIX_TOGGLES } = await import('../src/webgpu/dawn-node.js');
  if (!process.env.VK_DRIVER_FILES) useSwiftShaderIfPresent(); // smoke runs on CPU-only machines
  const { GpuContext } = await import('../src/webgpu/context.js');
  const { GpuTimer } = await import('../src/webgpu/timing.js');
  const { matmul } = await import('../src/webgpu/matmul.js');
  const { gemmF32 } = await import('../src/webgpu/gemm.js');
  const { gemmF16, pickF16Config, probeMatrixSyntax } = await import('../src/webgpu/gemm-f16.js');
  const { rng } = await import('../src/random.js');
  const features = ['shader-f16', 'chromium-experimental-subgroup-matrix', 'timestamp-query'];
  const device = await requestNodeDevice({ dawnOptions: [DAWN_F16_MATRIX_TOGGLES], features });
  const info = (await requestNodeAdapter())!.info as GPUAdapterInfo & { subgroupMatrixConfigs?: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[] };
  const configs = info.subgroupMatrixConfigs ?? [];
  console.error(`adapter: ${info.vendor} ${info.architecture} ${info.description}; features ${features.filter((f) => device.features.has(f)).join(', ')}; matrix configs ${JSON.stringify(configs.map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })))}`);
  const config = pickF16Config(configs);
  const probe = config ? await probeMatrixSyntax(device, config) : { syntax: undefined, messages: [] };
  const syntax = probe.syntax;
  console.error(`f16 config ${JSON.stringify(config)}, syntax ${syntax}; compiler errors of the other spellings:\n${probe.messages.join('\n')}`);
  const ctx = new GpuContext(device);
  const timer = new GpuTimer(ctx);
  const r = rng(1);
  const MAX = maxElements();
  const h = { a: halfData(r, MAX), b: halfData(r, MAX) };
  const A32 = ctx.upload('A32', h.a.values), B32 = ctx.upload('B32', h.b.values);
  const A16 = ctx.upload('A16', new Uint32Array(h.a.bits.buffer)), B16 = ctx.upload('B16', new Uint32Array(h.b.bits.buffer));
  const C = ctx.buffer('C', MAX * 4);
  type Run = (c: Case, a: GPUBuffer, b: GPUBuffer) => void;
  const view = (c: Case, a: GPUBuffer, b: GPUBuffer) => ({
    m: c.m, n: c.n, k: c.k, transA: c.form === 'TN', transB: c.form === 'NT',
    a: { buffer: a, ld: c.form === 'TN' ? c.m : c.k }, b: { buffer: b, ld: c.form === 'NT' ? c.k : c.n }, c: { buffer: C, ld: c.n },
  });
  const { F32_DEFAULT } = await import('../src/webgpu/gemm.js');
  type V = import('../src/webgpu/gemm.js').F32Variant;
  const sweep: [string, V | undefined, number?][] = [
    ['f32 default', undefined], ['f32 loop', { ...F32_DEFAULT, unroll: false }], ['f32 bk8 prefetch unrolled', { bk: 8, prefetch: true, unroll: true }],
    ['f32 bk8 double unrolled', { bk: 8, double: true, unroll: true }], ['f32 default split4', undefined, 4], ['f32 loop split4', { ...F32_DEFAULT, unroll: false }, 4],
  ];
  const small = new Set(['f32 small', 'f32 small unrolled']);
  sweep.push(['f32 small', undefined], ['f32 small unrolled', { ...F32_DEFAULT, unroll: true }]);
  // The options for the 128×128 kernel's limits on the default (bk16 prefetch unrolled), alone and combined.
  const limits: [string, V][] = [
    ['fragPrefetch', { fragPrefetch: true }], ['compact', { compact: true }], ['vec4', { vec4: true }], ['wideN', { wide: 'n' }], ['wideM', { wide: 'm' }],
    ['compact+fragPrefetch', { compact: true, fragPrefetch: true }], ['vec4+compact', { vec4: true, compact: true }],
    ['vec4+compact+fragPrefetch', { vec4: true, compact: true, fragPrefetch: true }], ['wideN+vec4+compact', { wide: 'n', vec4: true, compact: true }],
    ['wideN+vec4+compact+fragPrefetch', { wide: 'n', vec4: true, compact: true, fragPrefetch: true }],
    ['wideM+vec4+compact+fragPrefetch', { wide: 'm', vec4: true, compact: true, fragPrefetch: true }],
  ];
  for (const [name, v] of limits) sweep.push([`f32 ${name}`, { ...F32_DEFAULT, ...v }]);
  const variants: [string, Run, boolean][] = F32_SWEEP
    ? sweep.map(([name, v, split]) => [name, (c, a, b) => {
      gemmF32(ctx, { ...view(c, a, b), ...(split ? { splitK: split } : {}), ...(small.has(name) ? { tile: { tm: 4, tn: 4 } } : {}) }, v);
    }, false] as [string, Run, boolean])
    : ONLY_F16 || F16_SWEEP ? [] : [
    ['matmul (shared, fp32)', (c, a, b) => matmul(ctx, view(c, a, b)), false],
    ['gemm_f32', (c, a, b) => gemmF32(ctx, view(c, a, b)), false],
  ];
  if (config && syntax && F16_SWEEP) {
    const { F16_2X4, F16_DEFAULT } = await import('../src/webgpu/gemm-f16-plan.js');
    type F = import('../src/webgpu/gemm-f16-plan.js').F16Variant;
    // [name, tile]: the default (2×4 subgroups of 64×32, K step 32), larger subgroup blocks (fewer
    // matrix loads per MMA, more registers), other workgroup tiles, another K step. (A K step of 64,
    // and 32 on the 128×256 / 256×128 tiles, need more than the 32 KiB of workgroup memory Dawn gives.)
    const tiles: [string, F][] = [
      ['f16 default 2x2 of 64x64 bk32', F16_DEFAULT],
      ['f16 2x4 of 64x32 bk32 (the default before session 14)', F16_2X4],
      ['f16 2x4 of 64x32 bk16', { ...F16_2X4, bk: 16 }],
      ['f16 4x2 of 32x64 bk32', { sgRows: 4, sgCols: 2, sgm: 32, sgn: 64, bk: 32 }],
      ['f16 2x2 of 32x32 bk32 (64x64)', { sgRows: 2, sgCols: 2, sgm: 32, sgn: 32, bk: 32 }],
      ['f16 2x4 of 32x32 bk32 (64x128)', { sgRows: 2, sgCols: 4, sgm: 32, sgn: 32, bk: 32 }],
      // The 128×256 and 256×128 tiles fit 32 KiB at K step 16 only.
      ['f16 2x4 of 64x64 bk16 (128x256)', { sgRows: 2, sgCols: 4, sgm: 64, sgn: 64, bk: 16 }],
      ['f16 4x2 of 64x64 bk16 (256x128)', { sgRows: 4, sgCols: 2, sgm: 64, sgn: 64, bk: 16 }],
      // Double-buffered: one barrier per K step (twice the workgroup memory: K step 16 on a 128×128 tile).
      ['f16 2x4 of 64x32 bk16 double-buffered', { ...F16_2X4, bk: 16, double: true }],
      ['f16 2x2 of 64x64 bk16 double-buffered', { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 16, double: true }],
      // Timing probes of the default tile (wrong results): the multiplies alone, the staging alone.
      ['probe: default, multiplies only', { ...F16_DEFAULT, probe: 'mma' }],
      ['probe: default, staging only', { ...F16_DEFAULT, probe: 'stage' }],
    ];
    // Each tile on f16Plan's K split for its own grid; the default also on the plan before session 13.
    variants.push(['f16 default, legacy plan', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, plan: 'legacy' }), false]);
    for (const [name, variant] of tiles) variants.push([name, (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, variant }), false]);
    for (const [name, variant] of tiles.slice(0, 2)) variants.push([`${name} split4`, (c, a, b) => gemmF16(ctx, { ...view(c, a, b), splitK: 4 }, { config, syntax, variant }), false]);
  }
  if (config && syntax && !F32_SWEEP && !F16_SWEEP) {
    variants.push(['gemm_f16 (f32 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax }), false]);
    variants.push(['gemm_f16 blocks (f32 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, plan: 'blocks' }), false]);
  }
  if (config && syntax && !F32_SWEEP && !F16_SWEEP && !F16_LEAN) {
    variants.push(['gemm_f16 legacy plan (f32 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, plan: 'legacy' }), false]);
    variants.push(['gemm_f16 double-buffered (f32 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, plan: 'double' }), false]);
    // No workgroup memory: operands converted to f16 once per call, or already f16 (src/webgpu/gemm-f16-direct.ts).
    const { gemmF16Direct } = await import('../src/webgpu/gemm-f16-direct.js');
    variants.push(['gemm_f16 direct (f32 in memory, converted per call)', (c, a, b) => gemmF16Direct(ctx, view(c, a, b), { config, syntax }), false]);
    variants.push(['gemm_f16 direct (f16 in memory)', (c, a, b) => gemmF16Direct(ctx, view(c, a, b), { config, syntax, halfOperands: true }), true]);
    variants.push(['gemm_f16 matrix-staged (f16 in memory)', (c, a, b) => gemmF16Direct(ctx, view(c, a, b), { config, syntax, halfOperands: true }, true), true]);
    variants.push(['gemm_f16 matrix-staged (f32 in memory, converted per call)', (c, a, b) => gemmF16Direct(ctx, view(c, a, b), { config, syntax }, true), false]);
    for (const [name, variant] of [['2x2 of 64x64', { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 32 }], ['4x4 of 32x32', { sgRows: 4, sgCols: 4, sgm: 32, sgn: 32, bk: 32 }]] as const)
      variants.push([`gemm_f16 direct ${name} (f16 in memory)`, (c, a, b) => gemmF16Direct(ctx, view(c, a, b), { config, syntax, halfOperands: true, variant }), true]);
    variants.push(['gemm_f16 scalar staging (f32 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, scalar: true }), false]);
    variants.push(['gemm_f16 (f16 in memory)', (c, a, b) => gemmF16(ctx, view(c, a, b), { config, syntax, halfOperands: true }), true]);
  }
  // Warm the GPU's clocks before the first timed case (the first case ran ~4× slow without).
  for (let i = 0; i < 200; i++) gemmF32(ctx, view(cases()[2], A32, B32));
  await ctx.sync();
  const rows: Row[] = [];
  // The sweep (and --only-f16): every variant checked, then timed in three interleaved rounds after 3 warm-up
  // calls each (the fastest round counts), so no variant pays for the clocks the host pause of a
  // check lets drop.
  if (F32_SWEEP || ONLY_F16 || F16_SWEEP) {
    const ops = (half: boolean) => (half ? [A16, B16] : [A32, B32]) as [GPUBuffer, GPUBuffer];
    for (const c of cases()) {
      const mine = variants.filter(([impl]) => !impl.includes('split') || c.k >= 2048); // K splits for the long-K products
      const best = new Map<string, Row>();
      for (const [impl, run, half] of mine) {
        try {
          run(c, ...ops(half));
          const err = sampledError(c, h.a.values, h.b.values, await ctx.readF32(C, c.m * c.n), rng(c.m + c.n + c.k));
          best.set(impl, { ...c, impl, err, ms: Infinity });
        } catch (e) {
          best.set(impl, { ...c, impl, error: String((e as Error).message ?? e).slice(0, 500) });
        }
      }
      for (let round = 0; round < 3; round++)
        for (const [impl, run, half] of mine) {
          const row = best.get(impl)!;
          if (row.error) continue;
          for (let i = 0; i < 3; i++) run(c, ...ops(half));
          timer.begin(impl);
          for (let i = 0; i < reps; i++) run(c, ...ops(half));
          timer.end();
          row.ms = Math.min(row.ms!, (await timer.read()).get(impl)! / reps);
        }
      for (const row of best.values()) { rows.push(row); console.error(JSON.stringify(row)); }
    }
    return rows;
  }
  for (const c of cases())
    for (const [impl, run, half] of variants) {
      if (impl.includes('split') && c.form !== 'TN') continue; // the K split is for the long-K weight gradients
      const [a, b] = half ? [A16, B16] : [A32, B32];
      try {
        run(c, a, b);
        const got = await ctx.readF32(C, c.m * c.n);
        const err = sampledError(c, h.a.values, h.b.values, got, rng(c.m + c.n + c.k));
        timer.begin(impl);
        for (let i = 0; i < reps; i++) run(c, a, b);
        timer.end();
        const ms = (await timer.read()).get(impl)! / reps;
        rows.push({ ...c, impl, ms, err });
      } catch (e) {
        rows.push({ ...c, impl, error: String((e as Error).message ?? e).slice(0, 1500) });
      }
      console.error(JSON.stringify(rows[rows.length - 1]));
    }
  return rows;
}

async function childOrt(reps: number): Promise<Row[]> {
  const { DAWN_F16_MATRIX_TOGGLES } = await import('../src/webgpu/dawn-node.js');
  process.env.ORTFUSE_DAWN_FLAGS ??= DAWN_F16_MATRIX_TOGGLES; // so the adapter offers shader-f16
  const { nodeOrtWeb } = await import('../src/runtime/webgpu/ort-web-node.js');
  const { createModel, GraphBuilder } = await import('../src/ir/index.js');
  const { saveBytes } = await import('../src/onnx/io.js');
  const { DataType } = await import('../src/onnx/schema.js');
  const { rng } = await import('../src/random.js');
  const { ort } = await nodeOrtWeb();
  const keepAlive = setInterval(() => {}, 10);
  const rows: Row[] = [];
  const r = rng(2);
  const h = halfData(r, maxElements());
  for (const dtype of ['float32', 'float16'] as const) {
    for (const c of cases()) {
      const impl = `ORT-web MatMul ${dtype === 'float32' ? 'fp32' : 'fp16'}`;
      try {
        const m = createModel();
        const g = new GraphBuilder(m.graph);
        const dt = dtype === 'float32' ? DataType.FLOAT : DataType.FLOAT16;
        const A = g.input('A', dt, [c.m, c.k]), B = g.input('B', dt, [c.k, c.n]);
        for (let i = 0; i < 8; i++) g.output(g.op.MatMul(A, B), `Y${i}`);
        const s = await ort.InferenceSession.create(saveBytes(m), { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
        // ORT-web drops its device when the last session is released: take the current one.
        const device = ort.env.webgpu.device as unknown as GPUDevice;
        const gpu = (dims: [number, number]) => {
          const n = dims[0] * dims[1];
          const buf = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
          device.queue.writeBuffer(buf, 0, (dtype === 'float32' ? h.values.subarray(0, n) : h.bits.subarray(0, n)) as unknown as BufferSource);
          return ort.Tensor.fromGpuBuffer(buf as never, { dataType: dtype, dims });
        };
        const feeds = { A: gpu([c.m, c.k]), B: gpu([c.k, c.n]) };
        const once = async () => { const out = await s.run(feeds); for (const t of Object.values(out)) (t as { dispose(): void }).dispose(); };
        await once();
        await once();
        await device.queue.onSubmittedWorkDone();
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) await once();
        await device.queue.onSubmittedWorkDone();
        rows.push({ ...c, impl, ms: (performance.now() - t0) / (reps * 8) });
        await s.release();
      } catch (e) {
        rows.push({ ...c, impl, error: String((e as Error).message ?? e).slice(0, 300) });
      }
      console.error(JSON.stringify(rows[rows.length - 1]));
    }
  }
  clearInterval(keepAlive);
  return rows;
}

function runChild(args: string[], input?: string): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(args[0], args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    let text = '';
    c.stdout.on('data', (d: Buffer) => (text += d.toString()));
    c.on('error', (e) => resolve(`{"error": ${JSON.stringify(String(e))}}`));
    c.on('close', () => resolve(text));
    c.stdin.end(input ?? '');
  });
}

const tflops = (x: Row | undefined) => (x?.ms ? ((2 * x.m * x.n * x.k) / (x.ms * 1e-3) / 1e12).toFixed(1) : x?.error ? 'fail' : '-');

async function parent(): Promise<void> {
  const reps = arg('reps', '20');
  const out = arg('out', 'bench/results');
  const self = fileURLToPath(import.meta.url);
  const node = [process.execPath, ...process.execArgv, '--liftoff-only', '--max-old-space-size=8192', self];
  const rows: Row[] = [];
  for (const which of ONLY_F16 || F32_SWEEP || F16_SWEEP ? ['ours'] : ['ours', 'ort']) {
    const text = await runChild([...node, '--child', which, '--reps', reps, '--scale', String(SCALE), ...(ONLY_F16 ? ['--only-f16'] : []), ...(F16_LEAN ? ['--f16-lean'] : []), ...(F32_SWEEP ? ['--f32-sweep'] : []), ...(F16_SWEEP ? ['--f16-sweep'] : []), ...(FLCE ? ['--flce'] : [])]);
    try { rows.push(...(JSON.parse(text.trim().split('\n').pop()!) as Row[])); } catch { console.error(`child ${which} failed: ${text.slice(-400)}`); }
  }
  const torchText = ONLY_F16 || F32_SWEEP || F16_SWEEP ? '' : await runChild([arg('python', 'python3'), arg('torch', 'bench/matmul_torch.py'), reps], JSON.stringify(cases()));
  let torchInfo = '';
  for (const line of torchText.split('\n').filter((l) => l.trim().startsWith('{'))) {
    const j = JSON.parse(line);
    if (j.torch) torchInfo = `torch ${j.torch} on ${j.gpu}`;
    else if (j.dtype) rows.push({ form: j.form, m: j.m, n: j.n, k: j.k, impl: `torch ${j.dtype}`, ms: j.ms });
  }
  const impls = [...new Set(rows.map((r) => r.impl))];
  const find = (c: Case, impl: string) => rows.find((r) => r.impl === impl && r.form === c.form && r.m === c.m && r.n === c.n && r.k === c.k)
    ?? (impl.startsWith('ORT') ? rows.find((r) => r.impl === impl && r.m === c.m && r.n === c.n && r.k === c.k) : undefined);
  const errCol = (c: Case) => impls.filter((i) => i.startsWith('gemm') || i.startsWith('matmul') || i.startsWith('f32 ') || i.startsWith('f16 ')).map((i) => find(c, i)?.err?.toExponential(1) ?? '-').join(' / ');
  const md = [
    `TFLOP/s (2·M·N·K / time); ${torchInfo}. Check = relative L2 error of 256 sampled outputs vs float64, per our kernel in column order.`,
    '',
    `| GEMM | form | M×N×K | ${impls.join(' | ')} | check (ours) |`,
    `|---|---|---|${impls.map(() => '---|').join('')}---|`,
    ...cases().map((c) => `| ${c.what} | ${c.form} | ${c.m}×${c.n}×${c.k} | ${impls.map((i) => tflops(find(c, i))).join(' | ')} | ${errCol(c)} |`),
  ].join('\n');
  console.log(md);
  const errors = rows.filter((r) => r.error).map((r) => `${r.impl} ${r.form} ${r.m}x${r.n}x${r.k}: ${r.error}`);
  if (errors.length) console.log(`\nerrors:\n${[...new Set(errors)].slice(0, 20).join('\n')}`);
  fs.mkdirSync(out, { recursive: true });
  const tag = F32_SWEEP ? 'matmul-f32-sweep' : F16_SWEEP ? 'matmul-f16-sweep' : 'matmul-webgpu';
  fs.writeFileSync(path.join(out, `${tag}.json`), JSON.stringify({ torch: torchInfo, rows }, null, 2));
  fs.writeFileSync(path.join(out, `${tag}.table.md`), `${md}\n`);
}

const ci = process.argv.indexOf('--child');
if (ci > 0) {
  const reps = Number(arg('reps', '20'));
  const rows = await (process.argv[ci + 1] === 'ours' ? childOurs(reps) : childOrt(reps));
  console.log(JSON.stringify(rows));
  process.exit(0);
} else await parent();
