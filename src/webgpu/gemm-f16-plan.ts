/**
 * gemm_f16's options, tiles and plan (./gemm-f16.ts runs them): the adapter's matrix config and
 * WGSL spelling, the vec4 kernel's tile (`F16Variant`), and `f16Plan` — which kernel runs a product
 * and in how many K slices, under the plan rule of the options or of ORTFUSE_GEMM_F16.
 */
import { FILL, gemmPlan, kSplit, MIN_SLICE, vec4Fits } from './gemm-plan.js';
import type { MatmulArgs } from './matmul.js';

/** One f16 × f16 → f32 subgroup-matrix shape of the adapter (GPUAdapterInfo.subgroupMatrixConfigs). */
export interface MatrixConfig {
  M: number;
  N: number;
  K: number;
}

/**
 * WGSL spelling of subgroupMatrixLoad/Store: 'bool' = (ptr, offset, col_major, stride) as Dawn
 * first shipped it; 'template' = the later <T, row_major>(ptr, offset, stride) form.
 */
export type MatrixSyntax = 'bool' | 'template';

/**
 * gemmF16VecProgram's tile (bench/matmul-webgpu.ts --f16-sweep compares them; absent: the default
 * F16_DEFAULT, 2×2 subgroups of 64×64 results, K step 32). A subgroup's block is (sgm/cm)·(sgn/cn) result
 * matrices kept in registers: larger blocks load fewer matrices per MMA from workgroup memory but
 * hold more registers; the workgroup tile (sgRows·sgm)×(sgCols·sgn) sets how much each staged
 * operand element is reused.
 */
export interface F16Variant {
  /** Subgroups of 32 lanes along M and along N (workgroup size 32·sgRows·sgCols). */
  sgRows: number;
  sgCols: number;
  /** Result rows and columns of one subgroup (multiples of the matrix config's M and N). */
  sgm: number;
  sgn: number;
  /** K step staged per barrier (a multiple of the config's K and of 4). */
  bk: number;
  /**
   * Two workgroup buffers per operand: the next K step is stored into one while the subgroups
   * multiply out of the other, one barrier per K step instead of two (twice the workgroup memory).
   */
  double?: boolean;
  /**
   * Timing probes (bench/matmul-webgpu.ts --f16-sweep; their results are wrong): 'mma' leaves out
   * the staging (global loads, f16 stores into workgroup memory), 'stage' the matrix loads and
   * multiplies — what each half of the K loop costs alone.
   */
  probe?: 'mma' | 'stage';
  /**
   * Each operand's tile in workgroup memory as one block per subgroup row (A) or column (B), an
   * array of arrays, so that every matrix load names its block (`&As[sr]`) at a constant offset.
   * Under Dawn's robustness (on by default) Tint predicates each subgroupMatrixLoad whose offset is
   * not a constant (an add, a multiply, a compare and two selects per load in the K loop); with a
   * constant offset into a fixed-size block it proves the load in range when compiling. Measured
   * (session 15, H200, bench/results/step-speed-h200-s15.md): no gain, in the GEMMs or the mixed
   * 8×512 step (21,931 vs 22,064 tok/s); not the default.
   */
  blocks?: boolean;
}

/** gemmF16VecProgram's tile until session 14, and the matrix-staged kernel's: 2×4 subgroups of 64×32. */
export const F16_2X4: F16Variant = { sgRows: 2, sgCols: 4, sgm: 64, sgn: 32, bk: 32 };

/**
 * gemmF16VecProgram's tile: 2×2 subgroups of 64×64 (128 invocations, 16 result matrices each).
 * Session 14's sweep (H200, bench/results/step-speed-h200-s14.md) had it 20-36% faster than F16_2X4
 * on every MLP shape (gate/up forward 136 vs 100 TFLOP/s, down dX 131 vs 101) and faster on the rest.
 */
export const F16_DEFAULT: F16Variant = { sgRows: 2, sgCols: 2, sgm: 64, sgn: 64, bk: 32 };

export interface F16Options {
  config: MatrixConfig;
  /** gemmF16VecProgram's tile (sweeps; default F16_DEFAULT). */
  variant?: F16Variant;
  syntax?: MatrixSyntax;
  /** Operands A and B are f16 in memory (default f32, rounded to f16 when staged). */
  halfOperands?: boolean;
  /** Always the scalar-staged kernel (gemmF16Program), even where gemmF16VecProgram fits (benches). */
  scalar?: boolean;
  /**
   * `f16Plan`'s rule (benches): 'fill' (default); 'legacy', as before session 13 — gemmF32's tile
   * and K split; 'vec64', as 'fill' but the vec4 kernel on a 64×64 tile (F16_SMALL) wherever the
   * scalar-staged kernel would run, batched products included (attention's); 'staged' / 'direct':
   * ./gemm-f16-direct.ts's kernels wherever they apply (`f16Rule`); 'double', as 'fill' with the
   * vec4 kernel's tile double-buffered (F16_DOUBLE); 'blocks', as 'fill' with the tile's operands in
   * per-subgroup blocks (F16_BLOCKS). ORTFUSE_GEMM_F16 sets it in Node.
   */
  plan?: F16PlanRule;
}

export type F16PlanRule = 'fill' | 'legacy' | 'vec64' | 'staged' | 'direct' | 'double' | 'blocks';

const RULES: readonly F16PlanRule[] = ['fill', 'legacy', 'vec64', 'staged', 'direct', 'double', 'blocks'];

/**
 * The plan rule of `opts` (else ORTFUSE_GEMM_F16, else 'fill'). 'staged' and 'direct' send every
 * product they can take to ./gemm-f16-direct.ts's kernels (src/webgpu/gemm-mixed.ts) and plan the
 * rest as 'fill'.
 */
export function f16Rule(opts: Pick<F16Options, 'plan'>): F16PlanRule {
  return opts.plan ?? (RULES.includes(ENV_RULE as F16PlanRule) ? (ENV_RULE as F16PlanRule) : 'fill');
}

/**
 * The default tile double-buffered (the 'double' plan). K step 16: at 32 the two copies of a
 * 128×128 tile's operands and the epilogue's result matrices need more than WORKGROUP_BYTES.
 */
export const F16_DOUBLE: F16Variant = { ...F16_DEFAULT, bk: 16, double: true };

/** The default tile with its operands in per-subgroup blocks (the 'blocks' plan; `F16Variant.blocks`). */
export const F16_BLOCKS: F16Variant = { ...F16_DEFAULT, blocks: true };

/** The vec4 kernel's 64×64 tile: 2×2 subgroups of 32×32 (the 'vec64' plan; in the --f16-sweep). */
export const F16_SMALL: F16Variant = { sgRows: 2, sgCols: 2, sgm: 32, sgn: 32, bk: 32 };

/** Whether gemmF16VecProgram can run `args`: fp32 operands that can be read a vec4 at a time (`vec4Fits`). */
export function f16VecFits(args: MatmulArgs, opts: F16Options): boolean {
  return !opts.halfOperands && vec4Fits(args);
}

/**
 * Shortest K range of one gemm_f16 slice: 8 K steps of 32 where the grid of tiles alone leaves SMs
 * without a workgroup; gemm_f32's MIN_SLICE (512) where it does not. Session 14 (H200, same call,
 * bench/results/step-speed-h200-s14.md): K = 896 cut in 2-3 slices of a grid that already filled
 * the GPU ran at 49-67 TFLOP/s against 91-92 unsplit (q/o 4096×896×896, gate/up 2048×4864×896).
 */
const F16_MIN_SLICE = 256;

/** ORTFUSE_GEMM_F16=legacy|vec64|staged|direct|double|blocks (Node, measurements only): the plan rule of every gemm_f16 that names none. */
const ENV_RULE = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.ORTFUSE_GEMM_F16;

export interface F16Plan {
  /** gemmF16VecProgram ('vec') or gemmF16Program ('scalar'; `small`: its 64×64 tile). */
  kernel: 'vec' | 'scalar';
  small: boolean;
  split: number;
  /** The vec4 kernel's tile when not the options' own ('vec64': F16_SMALL; 'double': F16_DOUBLE; 'blocks': F16_BLOCKS). */
  variant?: F16Variant;
}

/**
 * Which gemm_f16 kernel runs `args`, and in how many K slices. The vec4 kernel wherever its
 * operands fit it (`f16VecFits`) and its grid, K split included, gives every SM a workgroup; the
 * scalar-staged kernel (64×64 tile, gemmF32's split) only where they do not — short-K products
 * with an N or M of 128 (the k/v projections). The vec4 kernel splits K until about 8 workgroups per
 * SM (SPLIT_TARGET), in slices of at least 256 (F16_MIN_SLICE; 512 where the tiles alone fill the GPU).
 *
 * Why (H200, bench/results/matmul-h200.md call 6): the vec4 kernel ran 83-100 TFLOP/s where its
 * grid had ~1,100-1,200 workgroups (the MLP's GEMMs, split or not) but 18 on the 224-tile q/o
 * products with K = 896 (gemmF32's plan splits no K below 1,024), whose workgroups walk the same
 * K: too few workgroups to hide each one's latency. And gemmF32's plan sent every product of fewer
 * than 132 large tiles to the scalar kernel (2.5-3× slower where both ran one tile): among them the
 * lm_head's input gradient (1,024 × 896 × 151,936 per chunk) and the q/o weight gradients.
 * 'legacy' (`F16Options.plan`, ORTFUSE_GEMM_F16=legacy): the plan before this rule, for benches.
 */
export function f16Plan(args: MatmulArgs, opts: F16Options): F16Plan {
  const base = gemmPlan(args);
  const vec = !opts.scalar && f16VecFits(args, opts);
  const rule = f16Rule(opts);
  // 'vec64': where the rule below would stage scalars on the 64×64 tile, the vec4 kernel's 64×64 tile.
  const small64 = (scalar: F16Plan): F16Plan => {
    if (rule !== 'vec64' || !vec || scalar.kernel !== 'scalar' || opts.variant) return scalar;
    return { kernel: 'vec', small: true, variant: F16_SMALL, split: args.batch ? 1 : f16Split(args, 64, 64, F16_SMALL.bk).split };
  };
  // A variant tile (sweeps) runs wherever the vec4 kernel fits, whatever the plan's tile size.
  if (rule === 'legacy' || args.batch || args.tile) {
    const p: F16Plan = { kernel: vec && (!base.small || opts.variant) ? 'vec' : 'scalar', small: base.small, split: base.split };
    return rule === 'legacy' || args.tile ? p : small64(p);
  }
  if (!vec) return { kernel: 'scalar', small: base.small, split: base.split };
  const { sgRows, sgCols, sgm, sgn, bk } = opts.variant ?? F16_DEFAULT;
  const { tiles, split } = f16Split(args, sgRows * sgm, sgCols * sgn, bk);
  if (tiles * split < FILL && args.splitK === undefined && !opts.variant) return small64({ kernel: 'scalar', small: base.small, split: base.split });
  const variant = opts.variant ? undefined : rule === 'double' ? F16_DOUBLE : rule === 'blocks' ? F16_BLOCKS : undefined;
  return { kernel: 'vec', small: false, split, ...(variant ? { variant } : {}) };
}

/**
 * `f16Plan`'s K split for a grid of bm×bn tiles walking K bk at a time (gemm-plan.ts kSplit with slices
 * of at least F16_MIN_SLICE, or gemm-plan.ts's MIN_SLICE where the tiles alone fill the GPU).
 */
export function f16Split(args: Pick<MatmulArgs, 'm' | 'n' | 'k' | 'splitK'>, bm: number, bn: number, bk: number): { tiles: number; split: number } {
  const tiles = Math.ceil(args.m / bm) * Math.ceil(args.n / bn);
  return { tiles, split: kSplit(tiles, args.k, tiles >= FILL ? MIN_SLICE : F16_MIN_SLICE, bk, args.splitK) };
}
