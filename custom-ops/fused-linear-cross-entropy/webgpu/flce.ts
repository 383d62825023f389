/// <reference types="@webgpu/types" />
/**
 * FusedLinearCrossEntropy on WebGPU: loss and, in the same pass, the gradients of hidden, weight
 * (and bias), chunk by chunk so that at most one [chunk, V] logits tile exists (Liger-Kernel's
 * fused_linear_cross_entropy; math in ./programs.ts and ../schema.ts). Per chunk of rows r0..r1:
 *
 *   z      = hidden[r0:r1] · weightᵀ                 GEMM, NT              → logits tile [C, V]
 *   z → dz (in place), rowLoss[r0:r1]                flce_rows (fp32 log-sum-exp)
 *   gradBias   (+)= Σ_r dz                           flce_bias_grad
 *   gradHidden[r0:r1] = dz · weight                   GEMM, NN (split-K)
 *   gradWeight (+)= dzᵀ · hidden[r0:r1]               GEMM, TN, accumulating
 *
 * The GEMMs are src/webgpu/gemm.ts gemmF32 (128×128 tiles) by default, or the shared
 * src/webgpu/matmul.ts (`gemm: 'shared'`, for comparison in bench/flce-webgpu.ts).
 *
 * then loss = Σ rowLoss / n (mean) or Σ rowLoss (sum); 'none' returns rowLoss itself. Chunk
 * C = Liger's next_pow2(ceil(N / ceil(V / H))) unless given. The gradients already include
 * gradOutput (a scalar, or [N] for 'none'; 1 when absent), so the backward of the op is a no-op when
 * gradOutput is known up front (as in a training step) — else call this once more with it.
 *
 * Precision 'f16' (`precision`): the three GEMMs on src/webgpu/gemm-mixed.ts `gemmMixed` (operands
 * rounded to half when staged, fp32 accumulation). dz then holds softmax − ε/V − (1 − ε)·onehot in
 * [−1, 1] without its scalar factor g / n (softmax entries of a 151,936 vocabulary are 1e-5..1e-10;
 * divided by n = 4096 rows they underflow half's 6e-8 smallest subnormal), and flce_grad_scale
 * multiplies the three gradients by it after the last chunk (accumulation into the caller's
 * gradWeight / gradBias goes through a temporary, so their prior contents are not scaled). A
 * per-row gradOutput ('none') has no common factor and stays in dz.
 */
import { fail } from '../../../src/errors.js';
import type { GpuContext } from '../../../src/webgpu/context.js';
import { gemmF32 } from '../../../src/webgpu/gemm.js';
import { gemmMixed } from '../../../src/webgpu/gemm-mixed.js';
import type { Precision } from '../../precision.js';
import { matmul, type MatmulArgs, type MatrixView } from '../../../src/webgpu/matmul.js';
import { gemmF16Direct, toHalfProgram } from '../../../src/webgpu/gemm-f16-direct.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';
import { GPU_CHUNK_ROWS, ligerChunkSize, type Reduction } from '../schema.js';

/**
 * Rows per chunk on WebGPU: Liger's rule (a logits chunk about the size of the hidden input), but at
 * least `minRows` (GPU_CHUNK_ROWS: 1024 rows, a 622 MB tile at V = 151936, still far from the [N, V]
 * logits; fewer rows starve the three GEMMs per chunk, above all the weight gradient's K = rows),
 * and at most what one storage binding holds.
 */
export function gpuChunkRows(n: number, v: number, h: number, maxBindingBytes: number, minRows = GPU_CHUNK_ROWS): number {
  const fit = Math.max(1, Math.floor(maxBindingBytes / (v * 4)));
  return Math.max(1, Math.min(n, fit, Math.max(ligerChunkSize(n, v, h), minRows)));
}
import { biasGradProgram, countProgram, gradScaleProgram, lossProgram, rowProgram, type LabelType } from './programs.js';

export interface FlceArgs {
  /** [N, H] */
  hidden: GPUBuffer;
  /** [V, H] (nn.Linear layout) */
  weight: GPUBuffer;
  /** [V], optional */
  bias?: GPUBuffer;
  /** [N] int64 (ONNX) or int32 */
  labels: GPUBuffer;
  labelType?: LabelType;
  n: number;
  h: number;
  v: number;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
  /** Rows per chunk (default: Liger's rule). */
  chunkRows?: number;
  /** Compute gradients (default true); false = loss only. */
  grads?: boolean;
  /** Scalar ('mean'/'sum') or [N] ('none') buffer multiplying the gradients; absent = 1. */
  gradOutput?: GPUBuffer;
  /** gradWeight/gradBias += instead of = (gradient accumulation, tied embeddings). */
  accumulate?: boolean;
  /** Output buffers to fill (allocated when absent). */
  out?: Partial<FlceOutputs>;
  /**
   * Which GEMM runs the three products: gemmF32 (default; gemmMixed at 'f16'), the shared matmul,
   * or ('staged', 'f16' on the tensor cores only; an experiment for bench/flce-webgpu.ts)
   * src/webgpu/gemm-f16-direct.ts's matrix-staged kernel on f16 copies of hidden, the weight (made
   * once) and each chunk's dz.
   */
  gemm?: 'f32' | 'shared' | 'staged';
  /** 'f16': GEMM operands rounded to half, dz's scalar factor after the GEMMs (see header); default 'fp32'. */
  precision?: Precision;
}

export interface FlceOutputs {
  /** [1] for 'mean'/'sum', [N] for 'none'. */
  loss: GPUBuffer;
  /** Absent when grads = false. */
  gradHidden?: GPUBuffer;
  gradWeight?: GPUBuffer;
  gradBias?: GPUBuffer;
  /** [4] f32: non-ignored valid label count, invalid label count (rows treated as ignored). */
  stats: GPUBuffer;
  /** Rows per chunk used. */
  chunkRows: number;
}

/** Record the fused loss (+ gradients) on `ctx`; read the outputs after `ctx.sync()`. */
export function fusedLinearCrossEntropy(ctx: GpuContext, a: FlceArgs): FlceOutputs {
  const K = 'FusedLinearCrossEntropy';
  const { n, h, v } = a;
  checkDims(K, { n, h, v });
  const reduction = a.reduction ?? 'mean';
  if (!['mean', 'sum', 'none'].includes(reduction)) fail('usage', `${K}: reduction '${reduction}' is not mean, sum or none`);
  const eps = a.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) fail('usage', `${K}: label_smoothing=${eps} must be in [0, 1]`);
  const labelType = a.labelType ?? 'int64';
  const ignoreIndex = a.ignoreIndex ?? -100;
  if (!Number.isInteger(ignoreIndex) || Math.abs(ignoreIndex) >= 2 ** 31) fail('usage', `${K}: ignore_index=${ignoreIndex} must be an i32`);
  const grads = a.grads ?? true;
  const chunk = Math.min(n, a.chunkRows ?? gpuChunkRows(n, v, h, ctx.device.limits.maxStorageBufferBindingSize));
  checkDims(K, { chunkRows: chunk });
  checkU32(K, 'weight', v * h);
  checkU32(K, 'logits chunk', chunk * v);
  checkBuffer(K, 'hidden', a.hidden, n * h);
  checkBuffer(K, 'weight', a.weight, v * h);
  if (a.bias) checkBuffer(K, 'bias', a.bias, v);
  checkBuffer(K, 'labels', a.labels, labelType === 'int64' ? 2 * n : n);
  const gradMode = !grads || !a.gradOutput ? 'none' : reduction === 'none' ? 'rows' : 'scalar';
  if (a.gradOutput) checkBuffer(K, 'gradOutput', a.gradOutput, gradMode === 'rows' ? n : 1);
  const o = a.out ?? {};
  // Every row's loss is written (0 for an ignored row), and the reduced loss.
  const rowLoss = reduction === 'none' ? (o.loss ? checkBuffer(K, 'loss', o.loss, n) : ctx.buffer('flce.loss', n * 4, 'any')) : ctx.temp('flce.rowLoss', n * 4, 'any');
  const loss = reduction === 'none' ? rowLoss : o.loss ? checkBuffer(K, 'loss', o.loss, 1) : ctx.buffer('flce.loss', 4, 'any');
  const stats = o.stats ? checkBuffer(K, 'stats', o.stats, 4) : ctx.buffer('flce.stats', 16);
  const gradHidden = o.gradHidden ? checkBuffer(K, 'gradHidden', o.gradHidden, n * h) : grads ? ctx.buffer('flce.gradHidden', n * h * 4, 'any') : undefined;
  const gradWeight = o.gradWeight ? checkBuffer(K, 'gradWeight', o.gradWeight, v * h) : grads ? ctx.buffer('flce.gradWeight', v * h * 4, a.accumulate ? 'zero' : 'any') : undefined;
  const gradBias = !a.bias || !grads ? undefined : o.gradBias ? checkBuffer(K, 'gradBias', o.gradBias, v) : ctx.buffer('flce.gradBias', v * 4);
  const logits = ctx.scratch('flce.logitsChunk', chunk * v * 4, 'any');
  const sg = ctx.subgroups;
  const f16 = a.precision === 'f16';
  if (f16 && a.gemm === 'shared') fail('usage', `${K}: precision 'f16' runs on gemmMixed, not the shared matmul`);
  const staged = a.gemm === 'staged' ? stagedOperands(ctx, a, chunk) : undefined;
  const mm = staged?.mm ?? (f16 ? gemmMixed : a.gemm === 'shared' ? matmul : gemmF32);
  // 'f16' with gradients: the scalar factor comes after the GEMMs (header); accumulating into the
  // caller's buffers goes through temporaries so that it does not scale what they held.
  const unscaled = f16 && grads && gradMode !== 'rows';
  const viaTemp = unscaled && (a.accumulate ?? false);
  const gw = viaTemp ? ctx.temp('flce.gradWeightUnscaled', v * h * 4, 'any') : gradWeight;
  const gb = viaTemp && gradBias ? ctx.temp('flce.gradBiasUnscaled', v * 4) : gradBias;

  ctx.run(countProgram(sg, labelType, n, v, ignoreIndex), [a.labels, stats]);
  for (let r0 = 0, c = 0; r0 < n; r0 += chunk, c++) {
    const rows = Math.min(chunk, n - r0);
    mm(ctx, { m: rows, n: v, k: h, a: { buffer: a.hidden, offset: r0 * h, ld: h }, b: { buffer: a.weight, ld: h }, c: { buffer: logits, ld: v }, transB: true });
    const row = rowProgram({ sg, labelType, hasBias: !!a.bias, grads, gradMode, mean: reduction === 'mean', rows, row0: r0, v, ignoreIndex, labelSmoothing: eps, ...(unscaled ? { unscaled } : {}) });
    ctx.run(row, [logits, ...(a.bias ? [a.bias] : []), a.labels, stats, ...(gradMode !== 'none' ? [a.gradOutput!] : []), rowLoss]);
    if (!grads) continue;
    const acc = c > 0 || (!viaTemp && (a.accumulate ?? false));
    if (gb) ctx.run(biasGradProgram(rows, v, acc), [logits, gb]);
    const dz = staged ? staged.half(logits, rows) : logits;
    mm(ctx, { m: rows, n: h, k: v, a: { buffer: dz, ld: v }, b: { buffer: a.weight, ld: h }, c: { buffer: gradHidden!, offset: r0 * h, ld: h } });
    mm(ctx, { m: v, n: h, k: rows, a: { buffer: dz, ld: v }, b: { buffer: a.hidden, offset: r0 * h, ld: h }, c: { buffer: gw!, ld: h }, transA: true, accumulate: acc });
  }
  if (unscaled) {
    const mean = reduction === 'mean', g = gradMode === 'scalar';
    const head = [stats, ...(g ? [a.gradOutput!] : [])];
    ctx.run(gradScaleProgram(n * h, mean, g, 'inPlace'), [...head, gradHidden!]);
    for (const [from, to, count] of [[gw!, gradWeight!, v * h], ...(gb ? [[gb, gradBias!, v] as const] : [])] as const)
      ctx.run(gradScaleProgram(count, mean, g, viaTemp ? 'add' : 'inPlace'), viaTemp ? [...head, from, to] : [...head, to]);
  }
  if (reduction !== 'none') ctx.run(lossProgram(sg, n, reduction === 'mean'), [rowLoss, stats, loss]);
  return { loss, gradHidden, gradWeight, gradBias, stats, chunkRows: chunk };
}

/**
 * `gemm: 'staged'`: f16 copies of hidden and the weight (made once), a function making each
 * chunk's f16 dz, and a GEMM that reads the copies in place of the f32 buffers the loop names.
 */
function stagedOperands(ctx: GpuContext, a: FlceArgs, chunk: number): { mm: (ctx: GpuContext, args: MatmulArgs) => void; half: (logits: GPUBuffer, rows: number) => GPUBuffer } {
  const K = 'FusedLinearCrossEntropy';
  const opts = ctx.f16Matrix;
  if (a.precision !== 'f16' || !opts) fail('usage', `${K}: gemm 'staged' runs precision 'f16' on the tensor cores (ctx.f16Matrix)`);
  const { n, h, v } = a;
  if (n % chunk || chunk % 128 || v % 128 || h % 128) fail('usage', `${K}: gemm 'staged' needs whole 128-row chunks and V, H multiples of 128 (N ${n}, chunk ${chunk}, V ${v}, H ${h})`);
  const toHalf = (label: string, buffer: GPUBuffer, rows: number, cols: number) => {
    // Scratch: each chunk's dz16 reuses one buffer, as the logits tile does.
    const y = ctx.scratch(label, rows * cols * 2, 'any');
    ctx.run(toHalfProgram(rows, cols, { buffer, ld: cols }), [buffer, y]);
    return y;
  };
  const copies = new Map<GPUBuffer, GPUBuffer>([[a.hidden, toHalf('flce.hidden16', a.hidden, n, h)], [a.weight, toHalf('flce.weight16', a.weight, v, h)]]);
  const half = (logits: GPUBuffer, rows: number) => {
    const dz = toHalf('flce.dz16', logits, rows, v);
    copies.set(dz, dz);
    return dz;
  };
  const view = (x: MatrixView) => ({ ...x, buffer: copies.get(x.buffer) ?? fail('runtime', `${K}: gemm 'staged' has no f16 copy of an operand`) });
  return { mm: (c, args) => gemmF16Direct(c, { ...args, a: view(args.a), b: view(args.b) }, { ...opts, halfOperands: true }, true), half };
}
