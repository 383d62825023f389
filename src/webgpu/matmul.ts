/// <reference types="@webgpu/types" />
/**
 * The fp32 GEMM shared by all kernels:
 *
 *   C[M, N] = alpha · op(A)[M, K] · op(B)[K, N]  (+ C when accumulating)
 *   op(A) = A (stored [M, K], row stride lda) or Aᵀ (stored [K, M]); op(B) likewise with ldb.
 *
 * Variants used by linear-cross-entropy: NT for logits = x·Wᵀ, NN for grad_x = dlogits·W, and TN
 * accumulating for grad_W += dlogitsᵀ·x. Operands are addressed by element offsets and leading
 * dimensions in uniforms, so a chunk of rows is a view with no copies and no 256-byte binding
 * alignment.
 *
 * Tiling: a 16×16 workgroup computes a (16·TM)×(16·TN) tile of C; each invocation owns TM×TN
 * accumulators in registers at rows ty + 16·i and columns tx + 16·j (strided, so neighbouring
 * invocations read neighbouring workgroup-memory words and write neighbouring C columns). K advances
 * in steps of 16 through workgroup memory: per step each invocation loads TM elements of A and TN
 * of B (coalesced along the operand's contiguous axis, whichever layout), then does 16·TM·TN FMAs
 * from (TM + TN)·16 workgroup-memory reads. TM, TN ∈ {1, 2, 4, 8} are picked from M and N (a chunk
 * of 8 rows against a vocab of 151936 gets a 16×128 tile). Bounds are checked on every load and
 * store, so any M, N, K works.
 *
 * Batched (`MatmulArgs.batch`; ./gemm.ts and ./gemm-f16.ts, not this file's `matmul`): dispatch z
 * walks the batch entries instead of K slices; each entry offsets its operands by the batch's
 * strides (two-level for GQA, `BatchGroup`) and may skip a causal triangle (`MatmulBatch.triangle`).
 *
 * Split-K: when M×N has too few tiles to fill the GPU but K is long (grad_x = dlogits·W of one
 * chunk: 32×896 outputs over K = 151936), S workgroup slices (dispatch z) each reduce a K range
 * into a [S, M, N] scratch, and a second kernel sums the slices into C (with alpha, accumulating).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { dispatch1d, type Program, type Uniform } from './program.js';

/** An operand: a buffer, an element offset and the row stride (elements) of its stored layout. */
export interface MatrixView {
  buffer: GPUBuffer;
  offset?: number;
  ld: number;
}

export interface MatmulArgs {
  m: number;
  n: number;
  k: number;
  a: MatrixView;
  b: MatrixView;
  c: MatrixView;
  transA?: boolean;
  transB?: boolean;
  /** C += alpha·op(A)·op(B) instead of C = alpha·op(A)·op(B). */
  accumulate?: boolean;
  alpha?: number;
  /** Override the register block (tests and benches); default chosen from M and N. */
  tile?: { tm: number; tn: number };
  /** Override the number of K slices (1 = no split); default from the tile count and K. */
  splitK?: number;
  /** `count` products in one dispatch (gemm_f32, gemm_f16; see MatmulBatch). */
  batch?: MatmulBatch;
}

/**
 * A two-level batch index for an operand: entry z reads its matrix at
 *
 *   offset + ⌊z / inner⌋·strideOuter + ⌊(z mod inner) / div⌋·stride
 *
 * e.g. grouped-query attention with z = b·Hq + h reading kv head b·Hkv + ⌊h/g⌋ of k [B, Hkv, T, D]:
 * `{ inner: Hq, div: g, strideOuter: Hkv·T·D }` with stride T·D (there ⌊z/g⌋·T·D is the same
 * offset, so `{ inner: count, div: g, strideOuter: 0 }` serves as well).
 */
export interface BatchGroup {
  inner: number;
  div: number;
  strideOuter: number;
}

/**
 * A batched GEMM: C_z = alpha·op(A_z)·op(B_z) (+ C_z) for z < count, all of one M, N, K, layout and
 * alpha, one dispatch (workgroup z = batch entry; no split-K). Entry z of an operand starts at its
 * view's offset + z·stride (A, B: or their `group`'s two-level index); strides are elements, 0 = the
 * same matrix for every entry (A and B only: entries of C must not overlap).
 */
export interface MatmulBatch {
  count: number;
  strideA: number;
  strideB: number;
  strideC: number;
  groupA?: BatchGroup;
  groupB?: BatchGroup;
  /**
   * Triangular structure of every entry (attention's causal mask), in op(·)'s row and column
   * indices: 'lowerC' = only C[i, j] with j ≤ i is wanted: workgroup tiles wholly above the
   * diagonal are skipped (that part of C keeps its old contents; entries above the diagonal inside
   * computed tiles are written); 'lowerA' = op(A)[i, p] is zero for p > i: each tile's K loop stops
   * after the tile's last row; 'upperA' = op(A)[i, p] is zero for p < i: it starts at the tile's
   * first row.
   */
  triangle?: 'lowerC' | 'lowerA' | 'upperA';
}

/** Batch entries of one dispatch at most (workgroup count along z). */
export const MAX_BATCH = 65535;

/** One operand's batch index parts (inner, div, strideOuter, stride): a plain stride is the group { count, 1, 0 }. */
function batchParts(batch: MatmulBatch, name: 'A' | 'B' | 'C'): [number, number, number, number] {
  const stride = name === 'A' ? batch.strideA : name === 'B' ? batch.strideB : batch.strideC;
  const g = name === 'A' ? batch.groupA : name === 'B' ? batch.groupB : undefined;
  return g ? [g.inner, g.div, g.strideOuter, stride] : [batch.count, 1, 0, stride];
}

/** Element offset of batch entry z of an operand, relative to its view's offset (the WGSL of BATCH_OFFSETS). */
export function batchOffset(batch: MatmulBatch, name: 'A' | 'B' | 'C', z: number): number {
  const [inner, div, outer, stride] = batchParts(batch, name);
  return Math.floor(z / inner) * outer + Math.floor((z % inner) / div) * stride;
}

/** WGSL: the batch entry's operand offsets offA, offB, offC (wid.z = entry) from the batch uniforms. */
export const BATCH_OFFSETS = ['A', 'B', 'C'].map((x) =>
  `let off${x} = u.off${x} + (wid.z / u.bIn${x}) * u.bOut${x} + ((wid.z % u.bIn${x}) / u.bDiv${x}) * u.bStr${x};`).join(' ');

const BK = 16;

/** Register block per invocation for an M×N product. */
export function chooseTile(m: number, n: number): { tm: number; tn: number } {
  const pick = (d: number) => (d >= 128 ? 8 : d >= 64 ? 4 : d >= 32 ? 2 : 1);
  return { tm: pick(m), tn: pick(n) };
}

/** Workgroups below which a long K is split (about two per SM on a large GPU). */
const FILL_GROUPS = 256;
/** Shortest K range per slice. */
const MIN_SLICE = 512;

/** Number of K slices for an M×N×K product with the given tile. */
export function chooseSplitK(m: number, n: number, k: number, tile: { tm: number; tn: number }): number {
  const tiles = Math.ceil(m / (16 * tile.tm)) * Math.ceil(n / (16 * tile.tn));
  if (tiles >= FILL_GROUPS) return 1;
  return Math.max(1, Math.min(Math.ceil(FILL_GROUPS / tiles), Math.floor(k / MIN_SLICE), 64));
}

/**
 * The uniforms of a GEMM program (one list for every GEMM kernel): sizes, leading dimensions,
 * element offsets, alpha (1 for the slices of a split-K: the sum applies it) and the K range per
 * slice (`slice`, a multiple of the kernel's K step); slice z writes C at offC + z·M·ldc.
 */
export function gemmUniforms(args: MatmulArgs, split: number, slice: number): Uniform[] {
  const alpha = args.alpha ?? 1;
  const { m, n, k } = args;
  return [
    { name: 'M', type: 'u32', value: m },
    { name: 'N', type: 'u32', value: n },
    { name: 'K', type: 'u32', value: k },
    { name: 'lda', type: 'u32', value: args.a.ld },
    { name: 'ldb', type: 'u32', value: args.b.ld },
    { name: 'ldc', type: 'u32', value: args.c.ld },
    { name: 'offA', type: 'u32', value: args.a.offset ?? 0 },
    { name: 'offB', type: 'u32', value: args.b.offset ?? 0 },
    { name: 'offC', type: 'u32', value: args.c.offset ?? 0 },
    { name: 'alpha', type: 'f32', value: split === 1 ? alpha : 1 },
    // K range of slice z: [z·slice, min(K, (z+1)·slice)); C of slice z starts at offC + z·M·ldc
    { name: 'slice', type: 'u32', value: slice },
    ...(args.batch ? (['A', 'B', 'C'] as const).flatMap((x) => {
      const [inner, div, outer, stride] = batchParts(args.batch!, x);
      return [
        { name: `bIn${x}`, type: 'u32' as const, value: inner },
        { name: `bDiv${x}`, type: 'u32' as const, value: div },
        { name: `bOut${x}`, type: 'u32' as const, value: outer },
        { name: `bStr${x}`, type: 'u32' as const, value: stride },
      ];
    }) : []),
  ];
}

/** The program for one GEMM (see header). */
export function matmulProgram(args: MatmulArgs, split = 1): Program {
  const { m, n, k, transA = false, transB = false } = args;
  const accumulate = split === 1 && (args.accumulate ?? false);
  const { tm, tn } = args.tile ?? chooseTile(m, n);
  const slice = Math.ceil(Math.ceil(k / split) / BK) * BK;
  if (![1, 2, 4, 8].includes(tm) || ![1, 2, 4, 8].includes(tn)) fail('usage', `matmul: tile ${tm}x${tn} is not in {1,2,4,8}`);
  const bm = 16 * tm, bn = 16 * tn;
  return {
    name: 'matmul',
    cacheKey: `f32;${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${tm}x${tn}`,
    workgroupSize: [16, 16],
    dispatch: [Math.ceil(n / bn), Math.ceil(m / bm), split],
    uniforms: gemmUniforms(args, split, slice),
    bindings: [
      { name: 'A', access: 'read', type: 'f32' },
      { name: 'B', access: 'read', type: 'f32' },
      { name: 'C', access: 'read_write', type: 'f32' },
    ],
    source: () => {
      // Everything over i < TM, j < TN is unrolled here (scalar accumulators acc_i_j), so no
      // compiler has to keep a dynamically indexed array in registers.
      const I = [...Array(tm).keys()], J = [...Array(tn).keys()];
      // Tile loads: linear index e = lidx + 256·i over the BM×BK (A) or BK×BN (B) tile, split so
      // that consecutive invocations walk the operand's contiguous axis.
      const loadA = (i: number) => transA
        ? `{ let e = lidx + ${256 * i}u; let kk = e / ${bm}u; let mm = e % ${bm}u; // A stored [K, M]
      let gm = row0 + mm; let gk = k0 + kk;
      var v = 0.0; if (gm < u.M && gk < kEnd) { v = A[u.offA + gk * u.lda + gm]; }
      As[kk * ${bm}u + mm] = v; }`
        : `{ let e = lidx + ${256 * i}u; let mm = e / ${BK}u; let kk = e % ${BK}u; // A stored [M, K]
      let gm = row0 + mm; let gk = k0 + kk;
      var v = 0.0; if (gm < u.M && gk < kEnd) { v = A[u.offA + gm * u.lda + gk]; }
      As[kk * ${bm}u + mm] = v; }`;
      const loadB = (j: number) => transB
        ? `{ let e = lidx + ${256 * j}u; let nn = e / ${BK}u; let kk = e % ${BK}u; // B stored [N, K]
      let gn = col0 + nn; let gk = k0 + kk;
      var v = 0.0; if (gn < u.N && gk < kEnd) { v = B[u.offB + gn * u.ldb + gk]; }
      Bs[kk * ${bn}u + nn] = v; }`
        : `{ let e = lidx + ${256 * j}u; let kk = e / ${bn}u; let nn = e % ${bn}u; // B stored [K, N]
      let gn = col0 + nn; let gk = k0 + kk;
      var v = 0.0; if (gn < u.N && gk < kEnd) { v = B[u.offB + gk * u.ldb + gn]; }
      Bs[kk * ${bn}u + nn] = v; }`;
      const store = (i: number, j: number) => `
  { let gm = row0 + ty + ${16 * i}u; let gn = col0 + tx + ${16 * j}u;
    if (gm < u.M && gn < u.N) { let idx = offC + gm * u.ldc + gn; C[idx] = ${accumulate ? 'C[idx] + ' : ''}u.alpha * acc_${i}_${j}; } }`;
      return {
        decls: `
var<workgroup> As: array<f32, ${bm * BK}>;
var<workgroup> Bs: array<f32, ${BK * bn}>;`,
        main: `
  let tx = lid.x; let ty = lid.y;
  let row0 = wid.y * ${bm}u; let col0 = wid.x * ${bn}u;
  let kBegin = wid.z * u.slice; let kEnd = min(u.K, kBegin + u.slice);
  let offC = u.offC + wid.z * u.M * u.ldc;
  ${I.flatMap((i) => J.map((j) => `var acc_${i}_${j} = 0.0;`)).join(' ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    ${I.map(loadA).join('\n    ')}
    ${J.map(loadB).join('\n    ')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${I.map((i) => `let a${i} = As[kk * ${bm}u + ty + ${16 * i}u];`).join(' ')}
      ${J.map((j) => `let b${j} = Bs[kk * ${bn}u + tx + ${16 * j}u];`).join(' ')}
      ${I.map((i) => J.map((j) => `acc_${i}_${j} = fma(a${i}, b${j}, acc_${i}_${j});`).join(' ')).join('\n      ')}
    }
    workgroupBarrier();
  }${I.flatMap((i) => J.map((j) => store(i, j))).join('')}`,
      };
    },
  };
}

/** Fail with a readable message when the sizes or views of a GEMM do not fit (`bytesAB`: operand element size). */
export function checkMatmulArgs(kernel: string, args: MatmulArgs, bytesAB = 4): void {
  const { m, n, k, transA = false, transB = false } = args;
  for (const [name, d] of [['M', m], ['N', n], ['K', k]] as const)
    if (!Number.isInteger(d) || d < 0) fail('usage', `${kernel}: ${name}=${d} must be a non-negative integer`);
  const need = (v: MatrixView, rows: number, cols: number, what: string, bytes: number) => {
    if (v.ld < cols) fail('usage', `${kernel}: ${what} leading dimension ${v.ld} < its row length ${cols}`);
    const last = (v.offset ?? 0) + (rows > 0 ? (rows - 1) * v.ld + cols : 0);
    if (last * bytes > v.buffer.size) fail('usage', `${kernel}: ${what} needs ${last} elements but its buffer holds ${v.buffer.size / bytes}`);
  };
  const batch = args.batch;
  if (batch) checkBatch(kernel, args);
  // The farthest batch entry of each operand (entry 0 without a batch).
  const far = (x: 'A' | 'B' | 'C') => {
    if (!batch) return 0;
    let most = 0;
    for (let z = 0; z < batch.count; z++) most = Math.max(most, batchOffset(batch, x, z));
    return most;
  };
  need({ ...args.a, offset: (args.a.offset ?? 0) + far('A') }, transA ? k : m, transA ? m : k, 'A', bytesAB);
  need({ ...args.b, offset: (args.b.offset ?? 0) + far('B') }, transB ? n : k, transB ? k : n, 'B', bytesAB);
  need({ ...args.c, offset: (args.c.offset ?? 0) + far('C') }, m, n, 'C', 4);
}

/** The batch's count, strides and groups are integers in range, no split-K, and entries of C do not overlap. */
function checkBatch(kernel: string, args: MatmulArgs): void {
  const b = args.batch!;
  const int = (what: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min || v >= 2 ** 32) fail('usage', `${kernel}: batch ${what}=${v} must be an integer >= ${min}`);
  };
  int('count', b.count, 1);
  if (b.count > MAX_BATCH) fail('usage', `${kernel}: batch count ${b.count} is above ${MAX_BATCH} (one dispatch's workgroups along z)`);
  int('strideA', b.strideA, 0);
  int('strideB', b.strideB, 0);
  int('strideC', b.strideC, 0);
  for (const [name, g] of [['groupA', b.groupA], ['groupB', b.groupB]] as const) {
    if (!g) continue;
    int(`${name}.inner`, g.inner, 1);
    int(`${name}.div`, g.div, 1);
    int(`${name}.strideOuter`, g.strideOuter, 0);
  }
  if (b.triangle !== undefined && !['lowerC', 'lowerA', 'upperA'].includes(b.triangle)) fail('usage', `${kernel}: batch triangle='${b.triangle}' is not 'lowerC', 'lowerA' or 'upperA'`);
  if (args.splitK !== undefined && args.splitK !== 1) fail('usage', `${kernel}: splitK=${args.splitK} with a batch (batched GEMMs run unsplit)`);
  const span = args.m > 0 && args.n > 0 ? (args.m - 1) * args.c.ld + args.n : 0;
  if (b.count > 1 && b.strideC < span) fail('usage', `${kernel}: batch strideC=${b.strideC} makes the entries of C overlap (each spans ${span} elements)`);
}

/** Validate and record one GEMM on `ctx` (see header). */
export function matmul(ctx: GpuContext, args: MatmulArgs): void {
  const { m, n, k } = args;
  if (args.batch) fail('usage', 'matmul: no batch here (gemmF32 and gemmMixed run batched GEMMs)');
  checkMatmulArgs('matmul', args);
  if (m === 0 || n === 0) return;
  const split = Math.max(1, Math.min(args.splitK ?? chooseSplitK(m, n, k, args.tile ?? chooseTile(m, n)), Math.ceil(k / BK)));
  runGemm(ctx, args, split, matmulProgram);
}

/**
 * Record a GEMM program on `ctx`: at once when `split` is 1, else its K slices into a
 * [split, M, N] scratch and their sum into C (alpha and accumulation applied by the sum).
 */
export function runGemm(ctx: GpuContext, args: MatmulArgs, split: number, program: (args: MatmulArgs, split: number) => Program): void {
  const { m, n } = args;
  if (args.batch && split !== 1) fail('usage', `matmul: a batched GEMM runs unsplit (split ${split})`);
  if (split === 1) {
    ctx.run(program(args, 1), [args.a.buffer, args.b.buffer, args.c.buffer]);
    return;
  }
  const partial = ctx.scratch('matmul.splitK', split * m * n * 4, 'any');
  ctx.run(program({ ...args, c: { buffer: partial, ld: n } }, split), [args.a.buffer, args.b.buffer, partial]);
  ctx.run(splitSumProgram(m, n, split, args), [partial, args.c.buffer]);
}

/** C = alpha·Σ_z P[z] (+ C): the second step of split-K. */
function splitSumProgram(m: number, n: number, split: number, args: MatmulArgs): Program {
  const acc = args.accumulate ?? false;
  return {
    name: 'matmul_splitk_sum',
    cacheKey: `f32;acc=${acc ? 1 : 0}`,
    workgroupSize: [256],
    dispatch: dispatch1d(Math.ceil((m * n) / 256)),
    uniforms: [
      { name: 'M', type: 'u32', value: m },
      { name: 'N', type: 'u32', value: n },
      { name: 'S', type: 'u32', value: split },
      { name: 'ldc', type: 'u32', value: args.c.ld },
      { name: 'offC', type: 'u32', value: args.c.offset ?? 0 },
      { name: 'alpha', type: 'f32', value: args.alpha ?? 1 },
    ],
    bindings: [
      { name: 'P', access: 'read', type: 'f32' },
      { name: 'C', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * 256u + lidx;
  if (i >= u.M * u.N) { return; }
  var s = 0.0;
  for (var z = 0u; z < u.S; z++) { s += P[z * u.M * u.N + i]; }
  let idx = u.offC + (i / u.N) * u.ldc + i % u.N;
  ${acc ? 'C[idx] = C[idx] + u.alpha * s;' : 'C[idx] = u.alpha * s;'}`,
    }),
  };
}
