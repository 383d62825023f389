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
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import type { Program } from './program.js';

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
}

const BK = 16;

/** Register block per invocation for an M×N product. */
export function chooseTile(m: number, n: number): { tm: number; tn: number } {
  const pick = (d: number) => (d >= 128 ? 8 : d >= 64 ? 4 : d >= 32 ? 2 : 1);
  const tm = pick(m);
  return { tm, tn: Math.max(pick(n), tm >= 8 ? 8 : 4) };
}

/** The program for one GEMM (see header). */
export function matmulProgram(args: MatmulArgs): Program {
  const { m, n, k, transA = false, transB = false, accumulate = false, alpha = 1 } = args;
  const { tm, tn } = args.tile ?? chooseTile(m, n);
  if (![1, 2, 4, 8].includes(tm) || ![1, 2, 4, 8].includes(tn)) fail('usage', `matmul: tile ${tm}x${tn} is not in {1,2,4,8}`);
  const bm = 16 * tm, bn = 16 * tn;
  return {
    name: 'matmul',
    cacheKey: `f32;${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${tm}x${tn}`,
    workgroupSize: [16, 16],
    dispatch: [Math.ceil(n / bn), Math.ceil(m / bm), 1],
    uniforms: [
      { name: 'M', type: 'u32', value: m },
      { name: 'N', type: 'u32', value: n },
      { name: 'K', type: 'u32', value: k },
      { name: 'lda', type: 'u32', value: args.a.ld },
      { name: 'ldb', type: 'u32', value: args.b.ld },
      { name: 'ldc', type: 'u32', value: args.c.ld },
      { name: 'offA', type: 'u32', value: args.a.offset ?? 0 },
      { name: 'offB', type: 'u32', value: args.b.offset ?? 0 },
      { name: 'offC', type: 'u32', value: args.c.offset ?? 0 },
      { name: 'alpha', type: 'f32', value: alpha },
    ],
    bindings: [
      { name: 'A', access: 'read', type: 'f32' },
      { name: 'B', access: 'read', type: 'f32' },
      { name: 'C', access: 'read_write', type: 'f32' },
    ],
    source: () => {
      // Tile loads: linear index e = lidx + 256·i over the BM×BK (A) or BK×BN (B) tile, split so
      // that consecutive invocations walk the operand's contiguous axis.
      const loadA = transA
        ? `let kk = e / ${bm}u; let mm = e % ${bm}u;  // A stored [K, M]
      let gm = row0 + mm; let gk = k0 + kk;
      var va = 0.0; if (gm < u.M && gk < u.K) { va = A[u.offA + gk * u.lda + gm]; }
      As[kk * ${bm}u + mm] = va;`
        : `let mm = e / ${BK}u; let kk = e % ${BK}u;  // A stored [M, K]
      let gm = row0 + mm; let gk = k0 + kk;
      var va = 0.0; if (gm < u.M && gk < u.K) { va = A[u.offA + gm * u.lda + gk]; }
      As[kk * ${bm}u + mm] = va;`;
      const loadB = transB
        ? `let nn = e / ${BK}u; let kk = e % ${BK}u;  // B stored [N, K]
      let gn = col0 + nn; let gk = k0 + kk;
      var vb = 0.0; if (gn < u.N && gk < u.K) { vb = B[u.offB + gn * u.ldb + gk]; }
      Bs[kk * ${bn}u + nn] = vb;`
        : `let kk = e / ${bn}u; let nn = e % ${bn}u;  // B stored [K, N]
      let gn = col0 + nn; let gk = k0 + kk;
      var vb = 0.0; if (gn < u.N && gk < u.K) { vb = B[u.offB + gk * u.ldb + gn]; }
      Bs[kk * ${bn}u + nn] = vb;`;
      const store = accumulate ? 'C[idx] = C[idx] + u.alpha * acc[i][j];' : 'C[idx] = u.alpha * acc[i][j];';
      return {
        decls: `
var<workgroup> As: array<f32, ${bm * BK}>;
var<workgroup> Bs: array<f32, ${BK * bn}>;`,
        main: `
  let tx = lid.x; let ty = lid.y;
  let row0 = wid.y * ${bm}u; let col0 = wid.x * ${bn}u;
  var acc: array<array<f32, ${tn}>, ${tm}>;
  var a: array<f32, ${tm}>;
  var b: array<f32, ${tn}>;
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
    for (var i = 0u; i < ${tm}u; i++) {
      let e = lidx + 256u * i;
      ${loadA}
    }
    for (var j = 0u; j < ${tn}u; j++) {
      let e = lidx + 256u * j;
      ${loadB}
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      for (var i = 0u; i < ${tm}u; i++) { a[i] = As[kk * ${bm}u + ty + 16u * i]; }
      for (var j = 0u; j < ${tn}u; j++) { b[j] = Bs[kk * ${bn}u + tx + 16u * j]; }
      for (var i = 0u; i < ${tm}u; i++) {
        for (var j = 0u; j < ${tn}u; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${tm}u; i++) {
    let gm = row0 + ty + 16u * i;
    if (gm >= u.M) { break; }
    for (var j = 0u; j < ${tn}u; j++) {
      let gn = col0 + tx + 16u * j;
      if (gn < u.N) { let idx = u.offC + gm * u.ldc + gn; ${store} }
    }
  }`,
      };
    },
  };
}

/** Validate and record one GEMM on `ctx` (see header). */
export function matmul(ctx: GpuContext, args: MatmulArgs): void {
  const { m, n, k, transA = false, transB = false } = args;
  for (const [name, d] of [['M', m], ['N', n], ['K', k]] as const)
    if (!Number.isInteger(d) || d < 0) fail('usage', `matmul: ${name}=${d} must be a non-negative integer`);
  const need = (v: MatrixView, rows: number, cols: number, what: string) => {
    if (v.ld < cols) fail('usage', `matmul: ${what} leading dimension ${v.ld} < its row length ${cols}`);
    const last = (v.offset ?? 0) + (rows > 0 ? (rows - 1) * v.ld + cols : 0);
    if (last * 4 > v.buffer.size) fail('usage', `matmul: ${what} needs ${last} floats but its buffer holds ${v.buffer.size / 4}`);
  };
  need(args.a, transA ? k : m, transA ? m : k, 'A');
  need(args.b, transB ? n : k, transB ? k : n, 'B');
  need(args.c, m, n, 'C');
  if (m === 0 || n === 0) return;
  ctx.run(matmulProgram(args), [args.a.buffer, args.b.buffer, args.c.buffer]);
}
