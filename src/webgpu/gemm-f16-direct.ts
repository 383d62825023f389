/// <reference types="@webgpu/types" />
/**
 * `gemmF16Direct`: gemm_f16 without workgroup memory — an experiment measured against
 * ./gemm-f16.ts's vec4 kernel by bench/matmul-webgpu.ts (--only-f16); training does not use it.
 *
 * The vec4 kernel converts every staged f32 element to f16 and writes it to workgroup memory one
 * 16-bit store at a time (WGSL's matrix loads read only array<f16>): 32 scalar stores per invocation
 * per K step against 16 matrix multiplies per subgroup, and each element of A is converted once per
 * column tile, each of B once per row tile. Here each operand is converted once (`toHalfProgram`:
 * f32 → a contiguous f16 copy, a vec4 per invocation; skipped when the operands already are f16),
 * and each subgroup loads its left and right matrices straight from the storage buffers, as
 * stored (row- or column-major), leaving reuse between subgroups to the caches. No barriers.
 *
 * `gemmF16StagedProgram` is the middle way: the vec4 kernel's workgroup tiles, filled by the
 * subgroups' own 16×16 matrix loads and stores instead of scalar stores.
 *
 * Tiles of 128×128 per workgroup: by default the vec4 kernel's grid (F16_DEFAULT: 2×2 subgroups,
 * each a 64×64 block of cm×cn result matrices); `opts.variant` may split the tile otherwise (2×4 of
 * 64×32, 4×4 of 32×32: less reuse of each loaded matrix, fewer registers). K walked one matrix K at a time. Only whole tiles (M and N
 * multiples of 128, K of the config's K), alpha 1, unbatched; K split as the vec4 kernel's (`f16Split`).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { mLoad, mStore } from './gemm-f16.js';
import { F16_2X4, F16_DEFAULT, f16Split, type F16Options } from './gemm-f16-plan.js';
import { HEAD, range } from './gemm.js';
import { checkMatmulArgs, gemmUniforms, runGemm, type MatmulArgs, type MatrixView } from './matmul.js';
import { dispatch1d, type Program } from './program.js';

const TILE = 128;
/** The K step of the matrix-staged kernel. */
const STAGED_BK = 32;

/** The subgroup grid of a variant (F16Options.variant: sgRows × sgCols subgroups, each sgm × sgn; its bk is not used), default F16_DEFAULT's. */
function grid(opts: F16Options): { sgRows: number; sgCols: number; sgm: number; sgn: number } {
  const v = opts.variant ?? F16_DEFAULT;
  if (v.sgRows * v.sgm !== TILE || v.sgCols * v.sgn !== TILE) fail('usage', `gemm_f16_direct: ${v.sgRows}x${v.sgCols} subgroups of ${v.sgm}x${v.sgn} do not make its ${TILE}x${TILE} tile`);
  return v;
}

/** Why `args` cannot run on gemmF16Direct (`staged`: its matrix-staged kernel), or undefined when it can. */
export function f16DirectWhyNot(args: MatmulArgs, opts: F16Options, staged = false): string | undefined {
  if (args.batch) return 'batched';
  if ((args.alpha ?? 1) !== 1) return `alpha ${args.alpha}`;
  if (args.m % TILE || args.n % TILE) return `M=${args.m}, N=${args.n} not multiples of ${TILE}`;
  const { M, N, K } = opts.config;
  if (staged && (M !== 16 || N !== 16 || K !== 16)) return `the matrix config ${M}x${N}x${K} is not 16x16x16`;
  const bk = staged ? STAGED_BK : K;
  if (args.k % bk) return `K=${args.k} not a multiple of ${bk}`;
  return undefined;
}

/** f32 [rows, cols] (leading dimension ld, offset) → contiguous f16 [rows, cols]; cols a multiple of 4. */
export function toHalfProgram(rows: number, cols: number, view: MatrixView): Program {
  const quads = (rows * cols) / 4;
  return {
    name: 'gemm_f16_to_half',
    cacheKey: 'f32',
    workgroupSize: [256],
    dispatch: dispatch1d(Math.ceil(quads / 256)),
    uniforms: [
      { name: 'quads', type: 'u32', value: quads },
      { name: 'cols4', type: 'u32', value: cols / 4 },
      { name: 'ld', type: 'u32', value: view.ld },
      { name: 'off', type: 'u32', value: view.offset ?? 0 },
    ],
    bindings: [{ name: 'x', access: 'read', type: 'f32' }, { name: 'y', access: 'read_write', type: 'vec4<f16>' }],
    extensions: ['f16'],
    source: () => ({
      main: `
  let q = flatWorkgroup(wid, nwg) * 256u + lidx;
  if (q >= u.quads) { return; }
  let i = u.off + (q / u.cols4) * u.ld + 4u * (q % u.cols4);
  y[q] = vec4<f16>(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]));`,
    }),
  };
}

/**
 * What both kernels' programs share: f16 operands A, B and C f32, one workgroup per 128×128 tile
 * and K slice, and the key's form, accumulation and `key`.
 */
function tileProgram(name: string, key: string, invocations: number, args: MatmulArgs, split: number, slice: number): Omit<Program, 'source'> {
  const accumulate = split === 1 && (args.accumulate ?? false);
  return {
    name,
    cacheKey: `${args.transA ? 'T' : 'N'}${args.transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};${key}`,
    workgroupSize: [invocations],
    dispatch: [args.n / TILE, args.m / TILE, split],
    uniforms: gemmUniforms(args, split, slice),
    bindings: [{ name: 'A', access: 'read', type: 'f16' }, { name: 'B', access: 'read', type: 'f16' }, { name: 'C', access: 'read_write', type: 'f32' }],
    extensions: ['f16', 'chromium_experimental_subgroup_matrix'],
    // Matrix offsets derive from lidx / 32: uniform within each subgroup of 32 consecutive lanes (NVIDIA's).
    diagnosticsOff: ['chromium.subgroup_matrix_uniformity'],
  };
}

/** The kernel (see header): f16 operands A, B; C f32. */
export function gemmF16DirectProgram(args: MatmulArgs, split: number, opts: F16Options): Program {
  const { transA = false, transB = false } = args;
  const { M: cm, N: cn, K: ck } = opts.config;
  const syntax = opts.syntax ?? 'bool';
  const accumulate = split === 1 && (args.accumulate ?? false);
  const { sgRows, sgCols, sgm, sgn } = grid(opts);
  const mt = sgm / cm, nt = sgn / cn;
  if (!Number.isInteger(mt) || !Number.isInteger(nt)) fail('usage', `gemm_f16_direct: subgroup matrix ${cm}x${cn}x${ck} does not tile a ${sgm}x${sgn} block`);
  const slice = Math.ceil(Math.ceil(args.k / split) / ck) * ck;
  const L = `subgroup_matrix_left<f16, ${ck}, ${cm}>`, R = `subgroup_matrix_right<f16, ${cn}, ${ck}>`, Res = `subgroup_matrix_result<f32, ${cn}, ${cm}>`;
  // A [M, K] row-major, or stored [K, M] (transA): a column-major left matrix; B [K, N] row-major,
  // or stored [N, K] (transB): a column-major right matrix.
  const rowOf = (i: number) => `row0 + sr * ${sgm}u + ${i * cm}u`, colOf = (j: number) => `col0 + sc * ${sgn}u + ${j * cn}u`;
  const left = (i: number) => (transA ? mLoad(syntax, L, '&A', `u.offA + k * u.lda + ${rowOf(i)}`, 'u.lda', true) : mLoad(syntax, L, '&A', `u.offA + (${rowOf(i)}) * u.lda + k`, 'u.lda'));
  const right = (j: number) => (transB ? mLoad(syntax, R, '&B', `u.offB + (${colOf(j)}) * u.ldb + k`, 'u.ldb', true) : mLoad(syntax, R, '&B', `u.offB + k * u.ldb + ${colOf(j)}`, 'u.ldb'));
  const cOff = (i: number, j: number) => `offC + (${rowOf(i)}) * u.ldc + ${colOf(j)}`;
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const cells = range(mt).flatMap((i) => range(nt).map((j) => [i, j] as const));
  return {
    ...tileProgram('gemm_f16_direct', `cfg=${cm}x${cn}x${ck};${syntax};grid=${sgRows}x${sgCols}`, 32 * sgRows * sgCols, args, split, slice),
    source: () => ({
      main: `
  let sg = lidx / 32u; let sr = sg / ${sgCols}u; let sc = sg % ${sgCols}u;${HEAD(TILE, TILE)}
  ${cells.map(([i, j]) => `var ${acc(i, j)} = ${accumulate ? mLoad(syntax, Res, '&C', cOff(i, j), 'u.ldc') : `${Res}()`};`).join('\n  ')}
  for (var k = kBegin; k < kEnd; k += ${ck}u) {
    ${range(mt).map((i) => `let l${i} = ${left(i)};`).join(' ')}
    ${range(nt).map((j) => `let r${j} = ${right(j)};`).join(' ')}
    ${cells.map(([i, j]) => `${acc(i, j)} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, ${acc(i, j)});`).join('\n    ')}
  }
  ${cells.map(([i, j]) => `${mStore(syntax, '&C', cOff(i, j), acc(i, j), 'u.ldc')};`).join('\n  ')}`,
    }),
  };
}

/**
 * The matrix-staged kernel: as the vec4 kernel (128×128 tiles, 8 subgroups of 64×32, K step 32,
 * each operand in workgroup memory as stored), but the tiles are copied there by the subgroups'
 * own matrix loads and stores — each of the 8 subgroups copies 4 of the 32 16×16 blocks of a
 * K step's A and B tiles (load from the storage buffer, store into workgroup memory, both
 * row-major: an exact copy whatever the matrix's role) — instead of one scalar store per element.
 * f16 operands, the 16×16×16 config only (the blocks are carried as 16×16 matrices).
 */
export function gemmF16StagedProgram(args: MatmulArgs, split: number, opts: F16Options): Program {
  const { transA = false, transB = false } = args;
  const { M: cm, N: cn, K: ck } = opts.config;
  if (cm !== 16 || cn !== 16 || ck !== 16) fail('usage', `gemm_f16_staged: needs the 16x16x16 matrix config, not ${cm}x${cn}x${ck}`);
  const syntax = opts.syntax ?? 'bool';
  const accumulate = split === 1 && (args.accumulate ?? false);
  const { sgm, sgn } = F16_2X4;
  const mt = sgm / 16, nt = sgn / 16, bk = STAGED_BK;
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  // Workgroup tiles as stored (f16 elements, pitches multiples of 8): A [m][k] or [k][m], B [k][n] or [n][k].
  const aK = !transA, bN = !transB;
  const pa = aK ? bk + 8 : TILE + 8, aRows = aK ? TILE : bk;
  const pb = bN ? TILE + 8 : bk + 8, bRows = bN ? bk : TILE;
  const blkCols = (cols: number) => cols / 16;
  const aBlockCols = blkCols(aK ? bk : TILE), bBlockCols = blkCols(bN ? TILE : bk);
  const aBlocks = (aRows / 16) * aBlockCols, bBlocks = (bRows / 16) * bBlockCols; // 16 each
  const Blk = 'subgroup_matrix_left<f16, 16, 16>';
  const L = 'subgroup_matrix_left<f16, 16, 16>', R = 'subgroup_matrix_right<f16, 16, 16>', Res = 'subgroup_matrix_result<f32, 16, 16>';
  // Block b of the A tile (br, bc) in its stored orientation: global and workgroup offsets.
  const copy = (i: number) => {
    const b = `(sg + ${8 * i}u)`;
    return `{ let b = ${b};
      if (b < ${aBlocks}u) {
        let br = b / ${aBlockCols}u; let bc = b % ${aBlockCols}u;
        let blk = ${mLoad(syntax, Blk, '&A', aK ? 'u.offA + (row0 + br * 16u) * u.lda + k0 + bc * 16u' : 'u.offA + (k0 + br * 16u) * u.lda + row0 + bc * 16u', 'u.lda')};
        ${mStore(syntax, '&As', `br * ${16 * pa}u + bc * 16u`, 'blk', `${pa}u`)};
      } else {
        let c = b - ${aBlocks}u; let br = c / ${bBlockCols}u; let bc = c % ${bBlockCols}u;
        let blk = ${mLoad(syntax, Blk, '&B', bN ? 'u.offB + (k0 + br * 16u) * u.ldb + col0 + bc * 16u' : 'u.offB + (col0 + br * 16u) * u.ldb + k0 + bc * 16u', 'u.ldb')};
        ${mStore(syntax, '&Bs', `br * ${16 * pb}u + bc * 16u`, 'blk', `${pb}u`)};
      } }`;
  };
  const copies = (aBlocks + bBlocks) / 8;
  const left = (i: number, s2: number) => aK
    ? mLoad(syntax, L, '&As', `(sr * ${sgm}u + ${i * 16}u) * ${pa}u + ${s2 * 16}u`, `${pa}u`)
    : mLoad(syntax, L, '&As', `${s2 * 16 * pa}u + sr * ${sgm}u + ${i * 16}u`, `${pa}u`, true);
  const right = (j: number, s2: number) => bN
    ? mLoad(syntax, R, '&Bs', `${s2 * 16 * pb}u + sc * ${sgn}u + ${j * 16}u`, `${pb}u`)
    : mLoad(syntax, R, '&Bs', `(sc * ${sgn}u + ${j * 16}u) * ${pb}u + ${s2 * 16}u`, `${pb}u`, true);
  const cOff = (i: number, j: number) => `offC + (row0 + sr * ${sgm}u + ${i * 16}u) * u.ldc + col0 + sc * ${sgn}u + ${j * 16}u`;
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const cells = range(mt).flatMap((i) => range(nt).map((j) => [i, j] as const));
  return {
    ...tileProgram('gemm_f16_staged', syntax, 256, args, split, slice),
    source: () => ({
      decls: `
var<workgroup> As: array<f16, ${aRows * pa}>; // A's tile as stored: ${aK ? '[m][k]' : '[k][m]'}
var<workgroup> Bs: array<f16, ${bRows * pb}>; // B's tile as stored: ${bN ? '[k][n]' : '[n][k]'}`,
      main: `
  let sg = lidx / 32u; let sr = sg / 4u; let sc = sg % 4u;${HEAD(TILE, TILE)}
  ${cells.map(([i, j]) => `var ${acc(i, j)} = ${accumulate ? mLoad(syntax, Res, '&C', cOff(i, j), 'u.ldc') : `${Res}()`};`).join('\n  ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${range(copies).map(copy).join('\n    ')}
    workgroupBarrier();${range(bk / 16).map((s2) => ` {
      ${range(mt).map((i) => `let l${i} = ${left(i, s2)};`).join(' ')}
      ${range(nt).map((j) => `let r${j} = ${right(j, s2)};`).join(' ')}
      ${cells.map(([i, j]) => `${acc(i, j)} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, ${acc(i, j)});`).join('\n      ')}
    }`).join('')}
    workgroupBarrier();
  }
  ${cells.map(([i, j]) => `${mStore(syntax, '&C', cOff(i, j), acc(i, j), 'u.ldc')};`).join('\n  ')}`,
    }),
  };
}

/**
 * Record C = op(A)·op(B) (+ C) on gemmF16Direct (`staged`: gemmF16StagedProgram): f32 operands
 * converted to f16 copies first (scratch of the context), f16 ones (`opts.halfOperands`) read as
 * they are.
 */
export function gemmF16Direct(ctx: GpuContext, args: MatmulArgs, opts: F16Options, staged = false): void {
  if (!ctx.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) || !ctx.device.features.has('shader-f16'))
    fail('usage', "gemm_f16_direct: the device lacks 'chromium-experimental-subgroup-matrix' or 'shader-f16'");
  checkMatmulArgs('gemm_f16_direct', args, opts.halfOperands ? 2 : 4);
  const why = f16DirectWhyNot(args, opts, staged);
  if (why) fail('usage', `gemm_f16_${staged ? 'staged' : 'direct'}: ${why}`);
  if (args.m === 0 || args.n === 0) return;
  const { transA = false, transB = false } = args;
  const half = (name: string, v: MatrixView, rows: number, cols: number): MatrixView => {
    if (opts.halfOperands) return v;
    // Scratch: one buffer per operand role for all calls of a kernel group (each call converts, then reads, in queue order).
    const y = ctx.scratch(`gemm_f16_direct.${name}16`, rows * cols * 2, 'any');
    ctx.run(toHalfProgram(rows, cols, v), [v.buffer, y]);
    return { buffer: y, ld: cols };
  };
  const a = half('a', args.a, transA ? args.k : args.m, transA ? args.m : args.k);
  const b = half('b', args.b, transB ? args.n : args.k, transB ? args.k : args.n);
  const { split } = f16Split(args, TILE, TILE, staged ? STAGED_BK : opts.config.K);
  runGemm(ctx, { ...args, a, b }, split, (x, s) => (staged ? gemmF16StagedProgram(x, s, opts) : gemmF16DirectProgram(x, s, opts)));
}
