/// <reference types="@webgpu/types" />
/**
 * CausalAttention WGSL kernels on our batched GEMMs (math in ../schema.ts and ../grad-schema.ts).
 * q, o, do [B, Hq, T, D], k, v [B, Hkv, T, D], lse [B, Hq, T]; query head h reads kv head ⌊h / g⌋,
 * g = Hq / Hkv. Every product is one batched GEMM (src/webgpu/matmul.ts `MatmulArgs.batch`) over
 * the B·Hq query heads (z = b·Hq + h; k and v through the two-level index b·Hkv + ⌊h/g⌋); scores
 * and probabilities are [B, Hq, T, T] fp32 scratch.
 *
 *   forward:   S = scale·Q·Kᵀ;  row kernel: lse = log Σ_{u ≤ t} exp S[t, u], P = exp(S − lse)
 *              (0 for u > t) in place;  O = P·V
 *   backward:  S = scale·Q·Kᵀ, dP = dO·Vᵀ;  row kernel: δ = rowsum(dO ∘ O), P = exp(S − lse) (0 for
 *              u > t), dS = P ∘ (dP − δ), both in place;  dV = Σ_group Pᵀ·dO and
 *              dK = scale·Σ_group dSᵀ·Q: per query head into a [B, Hq, T, D] partial, then a sum
 *              over the g heads of each kv head (not one GEMM per kv head with K = g·T: that one
 *              would run B·Hkv·T/64 workgroups, 128 at the 0.5B step's shape, a GEMM whose long K
 *              the GPU cannot fill; per head there are g times as many, and the causal triangle
 *              halves their K);  dQ = scale·dS·K
 *
 * Causal structure: the scores and dP GEMMs skip tiles wholly past the diagonal, and P·V and dS·K
 * stop K after each tile's last row, Pᵀ·dO and dSᵀ·Q start it at the tile's first row
 * (`MatmulBatch.triangle`).
 *
 * Transient memory: one (forward) or two (backward) [B, Hq, T, T] fp32 buffers and (g > 1) one
 * [B, Hq, T, D], scratch shared by every attention call until the kernel group's submit
 * (`GpuContext.scratch`), so a group of layers holds those in all.
 *
 * Precision 'f16': every GEMM operand rounded to half (src/webgpu/gemm-mixed.ts: the tensor cores
 * where the context has them), the row kernels and all buffers fp32.
 */
import { fail } from '../../../src/errors.js';
import type { GpuContext } from '../../../src/webgpu/context.js';
import { gemmFor } from '../../../src/webgpu/gemm-mixed.js';
import type { MatmulArgs, MatmulBatch } from '../../../src/webgpu/matmul.js';
import { dispatch1d, type BindingDecl, type Program } from '../../../src/webgpu/program.js';
import { reduceArgs, reductionWgsl } from '../../../src/webgpu/reduce.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';
import type { Precision } from '../../precision.js';
import type { AttnDims } from '../schema.js';
export type { AttnDims };

/** Invocations per row of the row kernels. */
const WG = 128;
/** float32's lowest finite value: the running max before any key. */
const LOWEST = '-3.4028234663852886e38';

const rd = (name: string): BindingDecl => ({ name, access: 'read', type: 'f32' });
const rw = (name: string): BindingDecl => ({ name, access: 'read_write', type: 'f32' });

/** A program with one workgroup per query row (B·Hq·T of them); `main` sees r (the row), t (its position), base = r·T. */
function rowProgram(ctx: GpuContext, name: string, a: AttnDims, bindings: BindingDecl[], main: string): Program {
  const rows = a.b * a.hq * a.t;
  const sg = ctx.subgroups;
  return {
    name,
    cacheKey: 'f32',
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: dispatch1d(rows),
    uniforms: [
      { name: 'rows', type: 'u32', value: rows },
      { name: 't', type: 'u32', value: a.t },
      { name: 'd', type: 'u32', value: a.d },
    ],
    bindings,
    source: () => ({
      decls: reductionWgsl(WG, sg),
      main: `
  let r = flatWorkgroup(wid, nwg);
  if (r >= u.rows) { return; }  // uniform: whole workgroup
  let t = r % u.t; let base = r * u.t;
  ${main.replaceAll('RED', reduceArgs(sg))}`,
    }),
  };
}

/** Row softmax of S [.., T, T] over keys u ≤ t (the scores GEMM leaves tiles past the diagonal unwritten): P in place (0 past t), lse. */
const SOFTMAX = `
  var mx = ${LOWEST};
  for (var j = lidx; j <= t; j += ${WG}u) { mx = max(mx, s[base + j]); }
  mx = wg_max(mx, RED);
  var sum = 0.0;
  for (var j = lidx; j <= t; j += ${WG}u) { sum += exp(s[base + j] - mx); }
  let l = mx + log(wg_sum(sum, RED));
  for (var j = lidx; j < u.t; j += ${WG}u) { s[base + j] = select(0.0, exp(s[base + j] - l), j <= t); }
  if (lidx == 0u) { lse[r] = l; }`;

/** δ = do·o of the row; P = exp(S − lse) over S, dS = P ∘ (dP − δ) over dP; both 0 past t (S and dP hold stale values there). */
const SOFTMAX_GRAD = `
  var dot = 0.0;
  for (var e = lidx; e < u.d; e += ${WG}u) { dot = fma(dout[r * u.d + e], o[r * u.d + e], dot); }
  let delta = wg_sum(dot, RED);
  let l = lse[r];
  for (var j = lidx; j < u.t; j += ${WG}u) {
    let p = select(0.0, exp(s[base + j] - l), j <= t);
    s[base + j] = p;
    dp[base + j] = select(0.0, p * (dp[base + j] - delta), j <= t);
  }`;

/** out [B, Hkv, T, D] = Σ over each kv head's g query heads of part [B, Hq, T, D]. */
function groupSum(a: AttnDims): Program {
  const n = a.b * a.hkv * a.t * a.d;
  return {
    name: 'causal_attention_group_sum',
    cacheKey: 'f32',
    workgroupSize: [256],
    dispatch: dispatch1d(Math.ceil(n / 256)),
    uniforms: [
      { name: 'n', type: 'u32', value: n },
      { name: 'td', type: 'u32', value: a.t * a.d },
      { name: 'g', type: 'u32', value: a.hq / a.hkv },
    ],
    bindings: [rd('part'), rw('out')],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * 256u + lidx;
  if (i >= u.n) { return; }
  let at = (i / u.td) * u.g * u.td + i % u.td;
  var s = 0.0;
  for (var h = 0u; h < u.g; h++) { s += part[at + h * u.td]; }
  out[i] = s;`,
    }),
  };
}

function check(k: string, a: AttnDims): void {
  checkDims(k, { b: a.b, hq: a.hq, hkv: a.hkv, t: a.t, d: a.d });
  if (a.hq % a.hkv) fail('usage', `${k}: query heads ${a.hq} are not a multiple of kv heads ${a.hkv}`);
  if (!(a.scale > 0) || !Number.isFinite(a.scale)) fail('usage', `${k}: scale ${a.scale} must be a finite number > 0`);
  checkU32(k, 'q', a.b * a.hq * a.t * a.d);
  checkU32(k, 'the scores [B, Hq, T, T]', a.b * a.hq * a.t * a.t);
}

/**
 * The batch of the per-query-head products: z = b·Hq + h; B is k or v [B, Hkv, T, D], read at kv
 * head b·Hkv + ⌊h/g⌋; `triangle`: the causal structure the GEMM may skip (MatmulBatch.triangle).
 */
function headBatch(a: AttnDims, strideA: number, strideC: number, triangle: MatmulBatch['triangle']): MatmulBatch {
  const groupB = { inner: a.hq, div: a.hq / a.hkv, strideOuter: a.hkv * a.t * a.d };
  return { count: a.b * a.hq, strideA, strideB: a.t * a.d, strideC, groupB, triangle };
}

/** S = scale·Q·Kᵀ [B, Hq, T, T] into `s` (NT per head). */
function scores(ctx: GpuContext, a: AttnDims, gemm: (ctx: GpuContext, args: MatmulArgs) => void, q: GPUBuffer, k: GPUBuffer, s: GPUBuffer): void {
  const { t, d } = a;
  gemm(ctx, { m: t, n: t, k: d, alpha: a.scale, transB: true, a: { buffer: q, ld: d }, b: { buffer: k, ld: d }, c: { buffer: s, ld: t }, batch: headBatch(a, t * d, t * t, 'lowerC') });
}

export interface AttnForwardArgs extends AttnDims {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** 'f16': GEMM operands rounded to half (see header); default 'fp32'. */
  precision?: Precision;
}

function checkInputs(k: string, a: AttnForwardArgs): void {
  check(k, a);
  const nq = a.b * a.hq * a.t * a.d, nkv = a.b * a.hkv * a.t * a.d;
  checkBuffer(k, 'q', a.q, nq);
  checkBuffer(k, 'k', a.k, nkv);
  checkBuffer(k, 'v', a.v, nkv);
}

/** o [B, Hq, T, D] and lse [B, Hq, T] (new buffers). */
export function causalAttentionForward(ctx: GpuContext, a: AttnForwardArgs): { o: GPUBuffer; lse: GPUBuffer } {
  checkInputs('CausalAttention', a);
  const { b, hq, t, d } = a;
  const gemm = gemmFor(a.precision);
  const p = ctx.scratch('attn.p', b * hq * t * t * 4, 'any');
  const o = ctx.buffer('attn.o', b * hq * t * d * 4, 'any'), lse = ctx.buffer('attn.lse', b * hq * t * 4, 'any');
  scores(ctx, a, gemm, a.q, a.k, p);
  ctx.run(rowProgram(ctx, 'causal_attention_softmax', a, [rw('s'), rw('lse')], SOFTMAX), [p, lse]);
  // O = P·V per head (NN; P is zero past the diagonal).
  gemm(ctx, { m: t, n: d, k: t, a: { buffer: p, ld: t }, b: { buffer: a.v, ld: d }, c: { buffer: o, ld: d }, batch: headBatch(a, t * t, t * d, 'lowerA') });
  return { o, lse };
}

export interface AttnBackwardArgs extends AttnForwardArgs {
  o: GPUBuffer;
  lse: GPUBuffer;
  dout: GPUBuffer;
}

/** dq [B, Hq, T, D], dk and dv [B, Hkv, T, D] (new buffers). */
export function causalAttentionBackward(ctx: GpuContext, a: AttnBackwardArgs): { dq: GPUBuffer; dk: GPUBuffer; dv: GPUBuffer } {
  const k = 'CausalAttentionGrad';
  checkInputs(k, a);
  const { b, hq, hkv, t, d } = a;
  const g = hq / hkv, nq = b * hq * t * d, nkv = b * hkv * t * d;
  checkBuffer(k, 'o', a.o, nq);
  checkBuffer(k, 'lse', a.lse, b * hq * t);
  checkBuffer(k, 'do', a.dout, nq);
  const gemm = gemmFor(a.precision);
  const p = ctx.scratch('attn.p', b * hq * t * t * 4, 'any'), ds = ctx.scratch('attn.ds', b * hq * t * t * 4, 'any');
  scores(ctx, a, gemm, a.q, a.k, p);
  // dP = dO·Vᵀ per head (NT; only u ≤ t is read).
  gemm(ctx, { m: t, n: t, k: d, transB: true, a: { buffer: a.dout, ld: d }, b: { buffer: a.v, ld: d }, c: { buffer: ds, ld: t }, batch: headBatch(a, t * d, t * t, 'lowerC') });
  ctx.run(rowProgram(ctx, 'causal_attention_softmax_grad', a, [rw('s'), rw('dp'), rd('dout'), rd('o'), rd('lse')], SOFTMAX_GRAD), [p, ds, a.dout, a.o, a.lse]);
  const dq = ctx.buffer('attn.dq', nq * 4, 'any'), dk = ctx.buffer('attn.dk', nkv * 4, 'any'), dv = ctx.buffer('attn.dv', nkv * 4, 'any');
  // dV = Σ_group Pᵀ·dO and dK = scale·Σ_group dSᵀ·Q: per query head (TN; Pᵀ and dSᵀ are zero
  // before the diagonal), into a [B, Hq, T, D] partial summed over each group (g = 1: straight).
  const part = g > 1 ? ctx.scratch('attn.part', nq * 4, 'any') : undefined;
  const perHead: MatmulBatch = { count: b * hq, strideA: t * t, strideB: t * d, strideC: t * d, triangle: 'upperA' };
  for (const [src, other, out, alpha] of [[p, a.dout, dv, 1], [ds, a.q, dk, a.scale]] as const) {
    gemm(ctx, { m: t, n: d, k: t, transA: true, alpha, a: { buffer: src, ld: t }, b: { buffer: other, ld: d }, c: { buffer: part ?? out, ld: d }, batch: perHead });
    if (part) ctx.run(groupSum(a), [part, out]);
  }
  // dQ = scale·dS·K per head (NN; dS is zero past the diagonal).
  gemm(ctx, { m: t, n: d, k: t, alpha: a.scale, a: { buffer: ds, ld: t }, b: { buffer: a.k, ld: d }, c: { buffer: dq, ld: d }, batch: headBatch(a, t * t, t * d, 'lowerA') });
  return { dq, dk, dv };
}
