/// <reference types="@webgpu/types" />
/**
 * GEMMs for the training step's projections (issue 12): M = B·T rows (2048-4096) against
 * K, N ∈ {128, 896, 4864}, in the three forms of a linear layer — forward Y = X·Wᵀ (NT), input
 * gradient dX = dY·W (NN), weight gradient dW = dYᵀ·X (TN, K = B·T). Same arguments, views and
 * split-K as ./matmul.ts (`MatmulArgs`). This file: `gemmF32` and the staging helpers both GEMM
 * kernels share; the tile and K-split plan they share is ./gemm-plan.ts, the tensor-core kernel
 * ./gemm-f16.ts.
 *
 * `gemmF32`: fp32, a 128×128 tile per 256-invocation workgroup, 8×8 outputs per invocation in two
 * 4×4 quadrants (rows 4·ty + i and 64 + 4·ty + i, likewise columns), so each K step reads four
 * vec4s from workgroup memory for 64 FMAs. The staged tiles are stored [k][m] with a 132-float row
 * pitch, which keeps the transposing stores of a row-major operand at most 2-way bank-conflicted.
 * No subgroup operations: on NVIDIA the vec4 broadcast reads already serve a warp. `F32Variant`:
 * the K walks and tile options that bench/matmul-webgpu.ts --f32-sweep compares (the defaults:
 * F32_DEFAULT, F32_SMALL_DEFAULT).
 *
 * Batched products (`MatmulArgs.batch`, e.g. attention's per-head Q·Kᵀ): dispatch z = batch entry,
 * no split-K; unbatched programs generate the same WGSL as without the option.
 *
 * Both kernels drop to a 64×64 tile when the 128×128 grid would leave the GPU's SMs idle (N = 128
 * rows of K/V projections), and split K where too few workgroups would walk a long K (`gemmPlan`).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { BATCH_OFFSETS, checkMatmulArgs, chooseSplitK, gemmUniforms, runGemm, type MatmulArgs, type MatmulBatch } from './matmul.js';
import type { BindingDecl, Program } from './program.js';
import { FILL, gemmPlan, vec4Fits } from './gemm-plan.js';

export const WG = 256;
/** Workgroup memory every kernel may use (Dawn's limit on the H200 and on SwiftShader). */
export const WORKGROUP_BYTES = 32768;

export const bindings = (t: 'f32' | 'f16'): BindingDecl[] => [
  { name: 'A', access: 'read', type: t },
  { name: 'B', access: 'read', type: t },
  { name: 'C', access: 'read_write', type: 'f32' },
];
export const range = (n: number) => [...Array(n).keys()];

interface StageSpec {
  name: 'A' | 'B';
  trans: boolean;
  rows: number;
  cols: number;
  zero: string;
  cast: string;
  store: (r: string, c: string, v: string) => string;
  /** The variable holding the tile's first K index (default k0). */
  kVar?: string;
  /** Batched program: the operand offset is HEAD's local offA / offB, not the uniform. */
  batched?: boolean;
  /**
   * Stage vec4s (gemm_f32's F32Variant.vec4; the operand bound as array<vec4<f32>>, `cast` f32): `store`
   * writes a whole vec4 that runs along tile axis `axis`, the one contiguous in workgroup memory;
   * a vec4 read along the other axis is written as four scalars by the spec's own `store`.
   */
  vec4?: { axis: 'r' | 'c'; store: (r: string, c: string, v: string) => string };
}

/**
 * One operand tile's elements for this invocation: `count` = rows·cols / WG of them (vec4s with
 * `o.vec4`: a quarter as many), consecutive invocations walking the operand's contiguous axis.
 * `rows`×`cols` is the tile in the operand's own orientation (op(A) is rows = M, cols = K; op(B)
 * rows = K, cols = N). Each element gives its tile coordinates (WGSL `let`s r and c; a vec4's first
 * element), its in-range condition, its value and its store to workgroup memory. A vec4 is wholly
 * in or out of range where the contiguous extent, leading dimension and offsets are multiples of 4
 * (`vec4Fits`).
 */
function tileElements(o: StageSpec): { rc: string; inRange: string; value: string; put: (v: string) => string }[] {
  const { name, rows, cols } = o;
  const k = o.kVar ?? 'k0';
  // Stored layout: A is [M, K] (or [K, M] when transposed), B is [K, N] (or [N, K]); so the
  // stored outer axis is the tile's column axis exactly when the operand is transposed.
  const kMajor = o.trans;
  const w = o.vec4 ? 4 : 1;
  const inner = (kMajor ? rows : cols) / w; // tile extent along the stored contiguous axis (in vec4s)
  const r0 = name === 'A' ? 'row0' : k, c0 = name === 'A' ? k : 'col0';
  const rLim = name === 'A' ? 'u.M' : 'kEnd', cLim = name === 'A' ? 'kEnd' : 'u.N';
  const ld = name === 'A' ? 'u.lda' : 'u.ldb', off = `${o.batched ? '' : 'u.'}off${name}`;
  const along = kMajor ? 'r' : 'c';
  const put = (v: string) => !o.vec4 ? o.store('r', 'c', v)
    : o.vec4.axis === along ? o.vec4.store('r', 'c', v)
    : range(4).map((t) => (along === 'r' ? o.store(`r + ${t}u`, 'c', `${v}[${t}]`) : o.store('r', `c + ${t}u`, `${v}[${t}]`))).join(' ');
  return range((rows * cols) / (w * WG)).map((i) => {
    const e = `(lidx + ${WG * i}u)`;
    const pos = w === 1 ? `${e} % ${inner}u` : `4u * (${e} % ${inner}u)`;
    const [r, c] = kMajor ? [pos, `${e} / ${inner}u`] : [`${e} / ${inner}u`, pos];
    const addr = kMajor ? `${off} + (${c0} + c) * ${ld} + ${r0} + r` : `${off} + (${r0} + r) * ${ld} + ${c0} + c`;
    const value = o.vec4 ? `${name}[(${addr}) / 4u]` : `${o.cast}(${name}[${addr}])`;
    return { rc: `let r = ${r}; let c = ${c};`, inRange: `${r0} + r < ${rLim} && ${c0} + c < ${cLim}`, value, put };
  });
}

/** The zero of a staged element (vec4 staging: a vec4). */
const zeroOf = (o: StageSpec) => (o.vec4 ? 'vec4<f32>(0.0)' : o.zero);

/** The WGSL lines that stage one operand tile into workgroup memory (out-of-range elements are zero). */
export function stageTile(o: StageSpec): string {
  return tileElements(o).map((e) => `{ ${e.rc} var v = ${zeroOf(o)};
      if (${e.inRange}) { v = ${e.value}; }
      ${e.put('v')} }`).join('\n    ');
}

/** Register staging: `load` reads this invocation's elements of a tile into p<name><i>, `store` writes them to workgroup memory. */
function stageViaRegisters(o: StageSpec): { decl: string; load: string; store: string } {
  const els = tileElements(o), zero = zeroOf(o);
  const v = (i: number) => `p${o.name}${i}`;
  return {
    decl: els.map((_, i) => `var ${v(i)} = ${zero};`).join(' '),
    load: els.map((e, i) => `{ ${e.rc} ${v(i)} = ${zero}; if (${e.inRange}) { ${v(i)} = ${e.value}; } }`).join('\n      '),
    store: els.map((e, i) => `{ ${e.rc} ${e.put(v(i))} }`).join('\n      '),
  };
}

/**
 * Common head of both kernels: tile origin, K range of this slice, C offset of this slice; batched
 * (`batch`), the whole K and the entry's offsets offA, offB, offC (wid.z = batch entry), and the
 * batch's triangle: tiles above the diagonal return at once ('lowerC', before any barrier: the
 * whole workgroup), K stops after the tile's last row ('lowerA') or starts at its first ('upperA').
 */
export const HEAD = (bm: number, bn: number, swap = false, batch?: MatmulBatch) => `
  let row0 = wid.${swap ? 'x' : 'y'} * ${bm}u; let col0 = wid.${swap ? 'y' : 'x'} * ${bn}u;${batch ? `${batch.triangle === 'lowerC' ? `
  if (col0 > row0 + ${bm - 1}u) { return; } // uniform: the whole tile is above the diagonal` : ''}
  let kBegin = ${batch.triangle === 'upperA' ? 'row0' : '0u'}; let kEnd = ${batch.triangle === 'lowerA' ? `min(u.K, row0 + ${bm}u)` : 'u.K'};
  ${BATCH_OFFSETS}` : `
  let kBegin = wid.z * u.slice; let kEnd = min(u.K, kBegin + u.slice);
  let offC = u.offC + wid.z * u.M * u.ldc;`}`;

/** Dispatch z and the cache key's suffix of a GEMM program: batch entries, else K slices. */
export const batchDispatch = (args: MatmulArgs, split: number): { z: number; key: string } =>
  args.batch ? { z: args.batch.count, key: `;batch${args.batch.triangle ? `;${args.batch.triangle}` : ''}` } : { z: split, key: '' };

export const cStore = (accumulate: boolean, gm: string, gn: string, v: string) =>
  `if (${gm} < u.M && ${gn} < u.N) { let idx = offC + ${gm} * u.ldc + ${gn}; C[idx] = ${accumulate ? 'C[idx] + ' : ''}u.alpha * ${v}; }`;

/**
 * How the fp32 kernel walks K (bench/matmul-webgpu.ts --f32-sweep compares them): `bk` K step
 * (8, 16 or 32, as far as 32 KiB of workgroup memory allows); `prefetch` = the next K step's global loads are issued into registers before this
 * step's FMAs (their latency hidden behind the math); `double` = two workgroup buffers, one
 * barrier per K step instead of two (implies prefetch).
 */
export interface F32Variant {
  bk?: 8 | 16 | 32;
  prefetch?: boolean;
  double?: boolean;
  /** Workgroup x walks the row blocks (M) instead of the column blocks (N). */
  swap?: boolean;
  /** The K step's FMAs written out instead of a loop over it. */
  unroll?: boolean;
  /**
   * Each staged operand element rounded to IEEE half (`ROUND_F16`, core WGSL: no f16 extension),
   * accumulation still fp32: precision 'f16' where the device has no f16 tensor-core path
   * (./gemm-mixed.ts). Off: the WGSL and cache key are those of the plain kernel.
   */
  roundF16?: boolean;
  // The four below attack the 128×128 kernel's per-instruction limits on NVIDIA (H200 sweep:
  // 28-35 TFLOP/s where torch fp32 runs 40-50); each is off by default, and off, the WGSL and cache
  // key are those of the plain kernel.
  /**
   * Fragment double buffering: K index kk + 1's A and B vec4s are read from workgroup memory before
   * kk's FMAs, so their latency hides behind kk's 64 (wide: 128) FMAs instead of stalling the first
   * of kk + 1's; 16 (wide: 24) more live registers (written out: implies `unroll`).
   */
  fragPrefetch?: boolean;
  /**
   * Invocation → outputs by subgroup: each 32 consecutive invocations (an NVIDIA warp) are 4 rows × 8
   * columns of the 16×16 invocation grid instead of 2 × 16, so each fragment read of a warp touches
   * 4 (A) or 8 (B) distinct vec4s, one 128-byte shared-memory wavefront, where B's 16 took two (6 → 4
   * wavefronts per K index). Correct on any subgroup size; faster only where subgroups are 32
   * consecutive invocations.
   */
  compact?: boolean;
  /**
   * Global loads a vec4 at a time (operands bound as array<vec4<f32>>): a quarter of the load
   * instructions, bounds checks and address arithmetic per K step, and one vec4 store to workgroup
   * memory where the operand's contiguous axis is the staged tile's (A transposed, B not). Needs
   * views whose contiguous extent, leading dimension, offset and batch strides are multiples of 4
   * (`vec4Fits`) and a whole vec4 per invocation; gemmF32 drops it elsewhere (and with roundF16).
   */
  vec4?: boolean;
  /**
   * The 128×256 ('n') or 256×128 ('m') tile, 8×16 / 16×8 outputs per invocation (128 accumulators):
   * twice the FMAs per staged element, per fragment read and per barrier, for grids that still fill
   * the GPU (`gemmPlan`). Large tile only; 25 KiB of workgroup memory at K step 16.
   */
  wide?: 'm' | 'n';
}

/**
 * WGSL `round_f16(x)`: x rounded to the nearest IEEE binary16 value, ties to even, as an f32;
 * beyond half's range ±inf, below its normals its subnormals (multiples of 2^-24), inf and NaN
 * kept. Integer bit operations (and round(), which WGSL defines as ties-to-even) rather than
 * `quantizeToF16`, whose rounding direction WGSL leaves to the implementation (SwiftShader
 * truncates) and which may flush subnormals.
 */
export const ROUND_F16 = `
fn round_f16(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  let sign = bits & 0x80000000u; let mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) { return x; }
  if (mag >= 0x477ff000u) { return bitcast<f32>(sign | 0x7f800000u); } // >= 65520: rounds past 65504
  if (mag >= 0x38800000u) { // half normals (>= 2^-14): keep 10 mantissa bits, the carry may reach the exponent
    return bitcast<f32>(sign | ((mag + 0xfffu + ((mag >> 13u) & 1u)) & 0xffffe000u));
  }
  return bitcast<f32>(sign | bitcast<u32>(round(bitcast<f32>(mag) * 16777216.0) * 5.9604644775390625e-8));
}`;

/**
 * The variants gemmF32 runs on the 128×128 and the 64×64 tile: K steps written out (large tile +5-8%,
 * session 7, bench/results/matmul-h200.md) and, on the large tile, compact (the MLP's GEMMs +3-6%, session 12,
 * bench/results/matmul-f32-sweep-h200-s12.md; vec4, the wide tiles and fragment prefetch gained less or lost).
 */
export const F32_DEFAULT: F32Variant = { bk: 16, prefetch: true, unroll: true, compact: true };
export const F32_SMALL_DEFAULT: F32Variant = { bk: 16, prefetch: true };

/** fp32 program; `small` = 64×64 tile (4×4 per invocation) instead of 128×128 (8×8; variant.wide: 128×256 or 256×128). */
export function gemmF32Program(args: MatmulArgs, split: number, small = false, variant: F32Variant = small ? F32_SMALL_DEFAULT : F32_DEFAULT): Program {
  const { transA = false, transB = false } = args;
  const accumulate = split === 1 && (args.accumulate ?? false);
  const bk = variant.bk ?? 16, double = variant.double ?? false, prefetch = double || (variant.prefetch ?? false), swap = variant.swap ?? false;
  const fragPrefetch = variant.fragPrefetch ?? false, unroll = fragPrefetch || (variant.unroll ?? false);
  const { compact = false, vec4 = false, wide } = variant;
  if (small && wide) fail('usage', `gemm_f32: the wide tile (F32Variant.wide '${wide}') has no 64x64 form`);
  const cast = variant.roundF16 ? 'round_f16' : 'f32';
  // 4×4 quadrants per invocation along M and along N (64 rows / columns apart).
  const qm = small ? 1 : wide === 'm' ? 4 : 2, qn = small ? 1 : wide === 'n' ? 4 : 2;
  const bm = 64 * qm, bn = 64 * qn, pitchA = bm + 4, pitchB = bn + 4; // in floats
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  const PA4 = pitchA / 4, PB4 = pitchB / 4, bufA4 = bk * PA4, bufB4 = bk * PB4; // in vec4s
  const batched = !!args.batch, bz = batchDispatch(args, split);
  const bytes = (double ? 2 : 1) * (bufA4 + bufB4) * 16;
  if (bytes > WORKGROUP_BYTES) fail('usage', `gemm_f32: K step ${bk}${double ? ', double-buffered,' : ''} needs ${bytes} bytes of workgroup memory for a ${bm}x${bn} tile (at most ${WORKGROUP_BYTES})`);
  if (vec4) {
    if (variant.roundF16 || (bm * bk) % (4 * WG) || (bk * bn) % (4 * WG)) fail('usage', `gemm_f32: vec4 loads need a whole vec4 per invocation (a ${bm}x${bn} tile at K step ${bk} has ${(bm * bk) / 4} of A) and no roundF16`);
    if (!vec4Fits(args)) fail('usage', 'gemm_f32: vec4 loads need contiguous extents, leading dimensions, offsets and batch strides that are multiples of 4');
  }
  const extra = `${fragPrefetch ? ';frag=1' : ''}${compact ? ';compact=1' : ''}${vec4 ? ';v4=1' : ''}${wide ? `;wide=${wide}` : ''}`;
  return {
    name: 'gemm_f32',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${bm};bk=${bk};pf=${prefetch ? 1 : 0};db=${double ? 1 : 0};swap=${swap ? 1 : 0};unroll=${unroll ? 1 : 0}${variant.roundF16 ? ';q16=1' : ''}${extra}${bz.key}`,
    workgroupSize: [WG],
    dispatch: swap ? [Math.ceil(args.m / bm), Math.ceil(args.n / bn), bz.z] : [Math.ceil(args.n / bn), Math.ceil(args.m / bm), bz.z],
    uniforms: gemmUniforms(args, split, slice),
    bindings: vec4 ? [{ name: 'A', access: 'read', type: 'vec4<f32>' }, { name: 'B', access: 'read', type: 'vec4<f32>' }, { name: 'C', access: 'read_write', type: 'f32' }] : bindings('f32'),
    source: () => {
      // As is [k][m]: A's (r = m, c = k) goes to row c; Bs is [k][n]: B's (r = k, c = n) to row r.
      // `cur` names the buffer (of the double-buffered form's two) that `bufA` / `bufB` offset into
      // workgroup memory. vec4 staging writes A's m and B's n (the rows' contiguous axis) a vec4 at a time.
      const bufA = (cur: string) => cur && `${cur} * ${bufA4}u + `, bufB = (cur: string) => cur && `${cur} * ${bufB4}u + `;
      const putA = (buf: string) => (r: string, c: string, v: string) => `As[${buf}(${c}) * ${PA4}u + (${r}) / 4u][(${r}) % 4u] = ${v};`;
      const putB = (buf: string) => (r: string, c: string, v: string) => `Bs[${buf}(${r}) * ${PB4}u + (${c}) / 4u][(${c}) % 4u] = ${v};`;
      const vecA = (buf: string) => vec4 ? { axis: 'r', store: (r: string, c: string, v: string) => `As[${buf}(${c}) * ${PA4}u + (${r}) / 4u] = ${v};` } as const : undefined;
      const vecB = (buf: string) => vec4 ? { axis: 'c', store: (r: string, c: string, v: string) => `Bs[${buf}(${r}) * ${PB4}u + (${c}) / 4u] = ${v};` } as const : undefined;
      const spec = (name: 'A' | 'B', cur: string, kVar = 'k0') => name === 'A'
        ? { name, trans: transA, rows: bm, cols: bk, zero: '0.0', cast, store: putA(bufA(cur)), kVar, batched, vec4: vecA(bufA(cur)) } as const
        : { name, trans: transB, rows: bk, cols: bn, zero: '0.0', cast, store: putB(bufB(cur)), kVar, batched, vec4: vecB(bufB(cur)) } as const;
      const I = range(4 * qm), J = range(4 * qn);
      // Element i of the invocation's rows: quadrant i/4 (offset 16·quadrant vec4s), component i%4;
      // `s` names one K index's fragments (fragPrefetch).
      const frag = (v: string, i: number, s = '') => `${v}${i >> 2}${s}[${i & 3}]`;
      const reads = (cur: string, kk: string, s = '') => range(Math.max(qm, qn)).map((h) => [
        h < qm ? `let a${h}${s} = As[${bufA(cur)}${kk} * ${PA4}u + ${16 * h}u + ty];` : '',
        h < qn ? `let b${h}${s} = Bs[${bufB(cur)}${kk} * ${PB4}u + ${16 * h}u + tx];` : '',
      ].filter(Boolean).join(' ')).join(' ');
      const fmas = (s = '') => I.map((i) => J.map((j) => `c${i}_${j} = fma(${frag('a', i, s)}, ${frag('b', j, s)}, c${i}_${j});`).join(' ')).join('\n      ');
      const step = (cur: string, kk: string) => `{
      ${reads(cur, kk)}
      ${fmas()}
    }`;
      // fragPrefetch: one block per K step, K index kk + 1's reads ahead of kk's FMAs.
      const pipelined = (cur: string) => `{
      ${reads(cur, '0u', '_0')}
      ${range(bk).map((kk) => `${kk + 1 < bk ? `${reads(cur, `${kk + 1}u`, `_${kk + 1}`)}\n      ` : ''}${fmas(`_${kk}`)}`).join('\n      ')}
    }`;
      const math = (cur: string) => fragPrefetch ? pipelined(cur)
        : unroll ? range(bk).map((kk) => step(cur, `${kk}u`)).join('\n    ') : `for (var kk = 0u; kk < ${bk}u; kk++) ${step(cur, 'kk')}`;
      let loop: string;
      if (!prefetch) {
        loop = `for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stageTile(spec('A', ''))}
    ${stageTile(spec('B', ''))}
    workgroupBarrier();
    ${math('')}
    workgroupBarrier();
  }`;
      } else if (!double) {
        const ra = stageViaRegisters(spec('A', '')), rb = stageViaRegisters(spec('B', ''));
        const na = stageViaRegisters(spec('A', '', 'kn')), nb = stageViaRegisters(spec('B', '', 'kn'));
        loop = `${ra.decl} ${rb.decl}
  if (kBegin < kEnd) { let k0 = kBegin; ${ra.load}
      ${rb.load} }
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${ra.store}
    ${rb.store}
    workgroupBarrier();
    let kn = k0 + ${bk}u;
    if (kn < kEnd) { ${na.load}
      ${nb.load} }
    ${math('')}
    workgroupBarrier();
  }`;
      } else {
        const ra = stageViaRegisters(spec('A', 'cur')), rb = stageViaRegisters(spec('B', 'cur'));
        const na = stageViaRegisters(spec('A', 'nxt', 'kn')), nb = stageViaRegisters(spec('B', 'nxt', 'kn'));
        loop = `${ra.decl} ${rb.decl}
  var cur = 0u;
  if (kBegin < kEnd) { let k0 = kBegin; ${ra.load}
      ${rb.load}
      ${ra.store}
      ${rb.store} }
  workgroupBarrier();
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    let kn = k0 + ${bk}u; let nxt = 1u - cur;
    if (kn < kEnd) { ${na.load}
      ${nb.load} }
    ${math('cur')}
    if (kn < kEnd) { ${na.store}
      ${nb.store} }
    workgroupBarrier();
    cur = nxt;
  }`;
      }
      const bufs = double ? 2 : 1;
      // compact: warp w = lidx / 32 is invocation rows 4·(w / 2) .. + 3, columns 8·(w % 2) .. + 7.
      const ids = compact ? 'let tx = (lidx / 32u) % 2u * 8u + lidx % 8u; let ty = lidx / 64u * 4u + (lidx / 8u) % 4u;' : 'let tx = lidx % 16u; let ty = lidx / 16u;';
      return {
        decls: `${variant.roundF16 ? ROUND_F16 : ''}
var<workgroup> As: array<vec4<f32>, ${bufs * bufA4}>; // [k][m], pitch ${pitchA} floats${double ? ', two buffers' : ''}
var<workgroup> Bs: array<vec4<f32>, ${bufs * bufB4}>; // [k][n]${pitchB !== pitchA ? `, pitch ${pitchB} floats` : ''}`,
        main: `
  ${ids}${HEAD(bm, bn, swap, args.batch)}
  ${I.flatMap((i) => J.map((j) => `var c${i}_${j} = 0.0;`)).join(' ')}
  ${loop}
  ${I.flatMap((i) => J.map((j) => cStore(accumulate, `(row0 + ${64 * (i >> 2)}u + 4u * ty + ${i & 3}u)`, `(col0 + ${64 * (j >> 2)}u + 4u * tx + ${j & 3}u)`, `c${i}_${j}`))).join('\n  ')}`,
      };
    },
  };
}

/**
 * The variant gemmF32 runs for `args` under `plan`: `wide` only where the plan took it; `vec4`
 * dropped (scalar loads) where the views do not fit it (`vec4Fits`), with roundF16, or where the
 * tile has less than one vec4 per invocation (the 64×64 tile at K step 8).
 */
export function f32Variant(args: MatmulArgs, v: F32Variant, plan: { small: boolean; wide?: 'm' | 'n' }): F32Variant {
  let out = v.wide && !plan.wide ? { ...v, wide: undefined } : v;
  if (v.vec4 && (v.roundF16 || !vec4Fits(args) || ((plan.small ? 64 : 128) * (v.bk ?? 16)) % (4 * WG))) out = { ...out, vec4: false };
  return out;
}

/** ORTFUSE_GEMM_F32=legacy (Node, measurements only): gemmF32 as it was before the session-7 sweeps. */
const LEGACY_F32 = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.ORTFUSE_GEMM_F32 === 'legacy';

/** Validate and record an fp32 GEMM (see header). */
export function gemmF32(ctx: GpuContext, args: MatmulArgs, variant?: F32Variant): void {
  checkMatmulArgs('gemm_f32', args);
  if (args.m === 0 || args.n === 0) return;
  if (LEGACY_F32) {
    // The kernel and K split before session 7's tuning, for same-call comparisons in the step benches.
    const small = Math.ceil(args.m / 128) * Math.ceil(args.n / 128) < FILL;
    const t = small ? 4 : 8;
    const split = args.batch ? 1 : Math.max(1, Math.min(chooseSplitK(args.m, args.n, args.k, { tm: t, tn: t }), Math.ceil(args.k / 32)));
    runGemm(ctx, args, split, (a, s) => gemmF32Program(a, s, small, { bk: 16, roundF16: variant?.roundF16 }));
    return;
  }
  const plan = gemmPlan(args, variant?.wide);
  const v = f32Variant(args, variant ?? (plan.small ? F32_SMALL_DEFAULT : F32_DEFAULT), plan);
  runGemm(ctx, args, plan.split, (a, s) => gemmF32Program(a, s, plan.small, v));
}
