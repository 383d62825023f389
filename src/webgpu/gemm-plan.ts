/**
 * The tile and K-split plan of the step's GEMMs (./gemm.ts gemmF32; ./gemm-f16-plan.ts builds
 * gemm_f16's on it): whether a product gets the 128×128 or the 64×64 tile, in how many K slices it
 * runs, and whether its operands can be read a vec4 at a time.
 */
import type { MatmulArgs } from './matmul.js';

/** Workgroups that fill a large GPU (132 SMs on an H100/H200). */
export const FILL = 132;

/**
 * Workgroups a GEMM is split into at least, where K is long enough: 8 per SM. On the H200 the
 * 266-tile weight gradients of the MLP (4864×896, K = 4096) run 22 TFLOP/s unsplit and 30-31 in 4-6
 * K slices, the 224-tile K = 4864 products 30 → 33 in 4-5 (bench/results/matmul-h200.md, session 7).
 */
const SPLIT_TARGET = 8 * FILL;
/** Shortest K range of one slice. */
export const MIN_SLICE = 512;

/** Rows × columns of the large tile: 128×128, or F32Variant.wide's 128×256 ('n') / 256×128 ('m'). */
const largeTile = (wide?: 'm' | 'n'): [number, number] => [wide === 'm' ? 256 : 128, wide === 'n' ? 256 : 128];

/**
 * Tile size (small or not) and K slices for an M×N×K product on 128×128 / 64×64 tiles. Batched:
 * never split; the small tile where all entries' tiles would not fill the GPU or where M or N is
 * at most 64 (attention's head size: a 128-wide tile would compute half zeros). `wide`
 * (F32Variant.wide): its tile replaces the 128×128 one where that grid still fills the GPU, and the
 * K split counts its tiles; the plan's `wide` says whether it did.
 */
export function gemmPlan(args: Pick<MatmulArgs, 'm' | 'n' | 'k' | 'tile' | 'splitK' | 'batch'>, wide?: 'm' | 'n'): { small: boolean; split: number; wide?: 'm' | 'n' } {
  const { m, n, k } = args;
  const grid = ([bm, bn]: [number, number]) => Math.ceil(m / bm) * Math.ceil(n / bn);
  // args.tile forcing the large tile forces the wide one too.
  const widen = (small: boolean, count: number) => (wide && !small && (args.tile || grid(largeTile(wide)) * count >= FILL) ? { wide } : {});
  if (args.batch) {
    const small = args.tile ? args.tile.tm < 8 : m <= 64 || n <= 64 || Math.ceil(m / 128) * Math.ceil(n / 128) * args.batch.count < FILL;
    return { small, split: 1, ...widen(small, args.batch.count) };
  }
  // args.tile (tests, benches) forces the size: tm = 8 is the 128×128 tile, anything less 64×64.
  const small = args.tile ? args.tile.tm < 8 : Math.ceil(m / 128) * Math.ceil(n / 128) < FILL;
  const w = widen(small, 1);
  const tiles = grid(small ? [64, 64] : largeTile(w.wide));
  return { small, split: kSplit(tiles, k, MIN_SLICE, 32, args.splitK), ...w };
}

/**
 * K slices for `tiles` workgroup tiles walking K `bk` at a time (`splitK` wins): K cut until about
 * SPLIT_TARGET workgroups, slices of at least `minSlice`, at most 64, never more than K steps.
 */
export function kSplit(tiles: number, k: number, minSlice: number, bk: number, splitK?: number): number {
  const split = splitK ?? (tiles >= SPLIT_TARGET ? 1 : Math.max(1, Math.min(Math.ceil(SPLIT_TARGET / tiles), Math.floor(k / minSlice), 64)));
  return Math.max(1, Math.min(split, Math.ceil(k / bk)));
}

/**
 * Whether `args` can be read a vec4 at a time: fp32 operands whose contiguous extents (K or M of A,
 * N or K of B), leading dimensions, offsets and batch strides are multiples of 4, so every vec4 of
 * a tile lies wholly inside or outside the operand (gemm_f32's vec4 variant, gemm_f16's vec4 kernel).
 */
export function vec4Fits(args: MatmulArgs): boolean {
  const { m, n, k, transA = false, transB = false } = args;
  const four = (x: number) => x % 4 === 0;
  const bt = args.batch;
  const batchFits = !bt || (four(bt.strideA) && four(bt.strideB) && four(bt.groupA?.strideOuter ?? 0) && four(bt.groupB?.strideOuter ?? 0));
  return four(args.a.ld) && four(args.a.offset ?? 0) && four(args.b.ld) && four(args.b.offset ?? 0) && four(transA ? m : k) && four(transB ? k : n) && batchFits;
}
