/**
 * Shared setup of the WebGPU kernel tests: a real dawn.node device (SwiftShader on CPU-only
 * machines), seeded random data and the relative L2 error against float64 references.
 *
 * Skipping: only when no adapter is found AND VK_ICD_FILENAMES is unset after we tried to point it
 * at chromium's SwiftShader (then there is no Vulkan driver to use at all); the reason is printed.
 * With VK_ICD_FILENAMES set, a missing adapter is a failure, not a skip.
 */
import { expect } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { batchOffset, type MatmulArgs, type MatmulBatch } from '../src/webgpu/matmul.js';
import { roundToFloat16 } from '../src/onnx/half.js';
import { requestNodeAdapter, requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
export { rng, randn } from '../src/random.js';
import { rng, randn } from '../src/random.js';

export interface GpuEnv {
  ctx?: GpuContext;
  skip?: string;
}

let env: Promise<GpuEnv> | undefined;

/** The test device, once per test process. */
export function gpuEnv(options: { subgroups?: boolean } = {}): Promise<GpuEnv> {
  env ??= (async () => {
    useSwiftShaderIfPresent();
    const adapter = await requestNodeAdapter();
    if (!adapter) {
      if (!process.env.VK_ICD_FILENAMES) {
        const skip = 'NO WEBGPU ADAPTER and VK_ICD_FILENAMES unset (install chromium for SwiftShader): WebGPU kernel tests SKIPPED';
        console.warn(`\n*** ${skip} ***\n`);
        return { skip };
      }
      throw new Error(`no WebGPU adapter although VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}`);
    }
    const device = await requestNodeDevice({ subgroups: options.subgroups });
    return { ctx: new GpuContext(device) };
  })();
  return env;
}

export { relL2 } from './numerics.js';

/**
 * Expect two runs' loss within 1e-5 and every gradient within relative L2 `tol` of the reference
 * `o`'s (same parameter names); the worst relative L2.
 */
export function expectSameGradients(k: { loss: number; grads: Map<string, Float32Array> }, o: { loss: number; grads: Map<string, Float32Array> }, tol = 1e-4): number {
  expect(Math.abs(k.loss - o.loss)).toBeLessThan(1e-5);
  expect([...k.grads.keys()].sort()).toEqual([...o.grads.keys()].sort());
  let worst = 0;
  for (const [name, g] of o.grads) {
    const e = relL2(k.grads.get(name)!, g);
    worst = Math.max(worst, e);
    expect(e, name).toBeLessThan(tol);
  }
  return worst;
}
import { relL2 } from './numerics.js';

/** Float64 copy of a float32 array. */
export const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);

/** Float64 C = alpha·op(A)·op(B) (+ C0). */
export function gemmRef(m: number, n: number, k: number, A: Float32Array, B: Float32Array, ta: boolean, tb: boolean, alpha: number, C0?: Float32Array): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A[ta ? p * m + i : i * k + p] * B[tb ? j * k + p : p * n + j];
      C[i * n + j] = alpha * s + (C0 ? C0[i * n + j] : 0);
    }
  return C;
}

/**
 * Relative L2 error against float64 of one GEMM by `gemm` on random operands (seeded by the sizes),
 * A and C as views at an element offset into larger buffers, as linear-CE addresses its chunks;
 * alpha 0.75, C's old values added when `opt.accumulate`; `pad` = the offset of A and C (a multiple of
 * 4 keeps A's vec4s aligned).
 */
export async function gemmError(ctx: GpuContext, gemm: (ctx: GpuContext, args: MatmulArgs) => void, m: number, n: number, k: number, opt: Partial<MatmulArgs>, pad = 7): Promise<number> {
  const r = rng(m * n + k);
  const ta = opt.transA ?? false, tb = opt.transB ?? false;
  const A = randn(r, m * k), B = randn(r, k * n), C0 = randn(r, m * n);
  const a = ctx.upload('A', Float32Array.from([...new Float32Array(pad), ...A]));
  const c = ctx.upload('C', Float32Array.from([...new Float32Array(pad), ...C0]));
  gemm(ctx, { m, n, k, a: { buffer: a, offset: pad, ld: ta ? m : k }, b: { buffer: ctx.upload('B', B), ld: tb ? k : n }, c: { buffer: c, offset: pad, ld: n }, alpha: 0.75, ...opt });
  const got = (await ctx.readF32(c, pad + m * n)).subarray(pad);
  return relL2(got, gemmRef(m, n, k, A, B, ta, tb, 0.75, opt.accumulate ? C0 : undefined));
}

/** Elements an operand's buffer needs: its farthest entry plus one matrix. */
const extent = (batch: MatmulBatch, x: 'A' | 'B' | 'C', offset: number, matrix: number) =>
  offset + Math.max(...Array.from({ length: batch.count }, (_, z) => batchOffset(batch, x, z))) + matrix;

/**
 * Float64 reference of every batch entry, written into a copy of C0 (entries at their offsets);
 * batch.triangle 'lowerA' ('upperA'): op(A)[i, p] taken as zero for p > i (p < i); 'lowerC': see runBatch.
 */
export function batchRef(args: Omit<MatmulArgs, 'a' | 'b' | 'c'>, A: Float32Array, B: Float32Array, C0: Float32Array, offs: { a: number; b: number; c: number }): Float64Array {
  const { m, n, k, transA = false, transB = false } = args;
  const batch = args.batch!;
  const C = Float64Array.from(C0);
  for (let z = 0; z < batch.count; z++) {
    const a = A.slice(offs.a + batchOffset(batch, 'A', z), offs.a + batchOffset(batch, 'A', z) + m * k);
    const zero = (i: number, p: number) => (batch.triangle === 'lowerA' && p > i) || (batch.triangle === 'upperA' && p < i);
    if (batch.triangle) for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) if (zero(i, p)) a[transA ? p * m + i : i * k + p] = 0;
    const b = B.subarray(offs.b + batchOffset(batch, 'B', z), offs.b + batchOffset(batch, 'B', z) + k * n);
    const c0 = C0.slice(offs.c + batchOffset(batch, 'C', z), offs.c + batchOffset(batch, 'C', z) + m * n);
    C.set(gemmRef(m, n, k, a, b, transA, transB, args.alpha ?? 1, args.accumulate ? c0 : undefined), offs.c + batchOffset(batch, 'C', z));
  }
  return C;
}

/**
 * Run one batched GEMM on random data (seeded; `editA` may change A, whose entries start at `offset`), return got and float64 want over all of C's buffer
 * (batch.triangle 'lowerC': want takes got's values above each entry's diagonal, which are not wanted);
 * `offs`: the operands' element offsets (multiples of 4 keep vec4s aligned).
 */
export async function runBatch(ctx: GpuContext, gemm: (ctx: GpuContext, a: MatmulArgs) => void, args: Omit<MatmulArgs, 'a' | 'b' | 'c'>, round = false, editA?: (A: Float32Array, offset: number) => void, offs = { a: 5, b: 3, c: 7 }) {
  const { m, n, k, transA = false, transB = false, batch } = args;
  const r = rng(m * 31 + n * 7 + k + batch!.count);
  const A = randn(r, extent(batch!, 'A', offs.a, m * k)), B = randn(r, extent(batch!, 'B', offs.b, k * n)), C0 = randn(r, extent(batch!, 'C', offs.c, m * n));
  editA?.(A, offs.a);
  const c = ctx.upload('C', C0);
  gemm(ctx, { ...args, a: { buffer: ctx.upload('A', A), offset: offs.a, ld: transA ? m : k }, b: { buffer: ctx.upload('B', B), offset: offs.b, ld: transB ? k : n }, c: { buffer: c, offset: offs.c, ld: n } });
  const got = await ctx.readF32(c, C0.length);
  const rd = (x: Float32Array) => (round ? Float32Array.from(roundToFloat16(x)) : x);
  const want = batchRef(args, rd(A), rd(B), C0, offs), unrounded = batchRef(args, A, B, C0, offs);
  if (batch!.triangle === 'lowerC')
    for (let z = 0; z < batch!.count; z++)
      for (let i = 0; i < m; i++)
        for (let j = i + 1; j < n; j++) {
          const at = offs.c + batchOffset(batch!, 'C', z) + i * n + j;
          want[at] = unrounded[at] = got[at];
        }
  return { got, want, unrounded, C0, offC: offs.c };
}

// Grouped-query attention's pattern: z = b·Hq + h (B 2, Hq 4, Hkv 2, g 2) reads B's entry b·Hkv + ⌊h/2⌋.
export const gqaBatch = (m: number, n: number, k: number): MatmulBatch => ({ count: 8, strideA: m * k, strideB: k * n, strideC: m * n, groupB: { inner: 4, div: 2, strideOuter: 2 * k * n } });
