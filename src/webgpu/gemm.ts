/// <reference types="@webgpu/types" />
/**
 * GEMMs for the training step's projections (issue 12): M = B·T rows (2048-4096) against
 * K, N ∈ {128, 896, 4864}, in the three forms of a linear layer — forward Y = X·Wᵀ (NT), input
 * gradient dX = dY·W (NN), weight gradient dW = dYᵀ·X (TN, K = B·T). Same arguments, views and
 * split-K as ./matmul.ts (`MatmulArgs`); two kernels:
 *
 * - `gemmF32`: fp32, a 128×128 tile per 256-invocation workgroup, 8×8 outputs per invocation in
 *   two 4×4 quadrants (rows 4·ty + i and 64 + 4·ty + i, likewise columns), so each K step reads
 *   four vec4s from workgroup memory for 64 FMAs. The staged tiles are stored [k][m] with a
 *   132-float row pitch, which keeps the transposing stores of a row-major operand at most 2-way
 *   bank-conflicted. No subgroup operations: on NVIDIA the vec4 broadcast reads already serve a warp.
 * - `gemmF16`: tensor cores through `chromium_experimental_subgroup_matrix` — f16 operands (fp32
 *   or f16 in memory, rounded to f16 when staged), f32 accumulation. Eight subgroups of 32 lanes
 *   per workgroup in a 2×4 grid; each owns a (mt·cm)×(nt·cn) block of cm×cn result matrices of the
 *   adapter's f16→f32 config (`pickF16Config`). The epilogue goes through one cm×cn workgroup slot
 *   per subgroup, so bounds, alpha and accumulation are plain per-element code and any M, N, K works.
 *
 * Both drop to a 64×64 tile when the 128×128 grid would leave the GPU's SMs idle (N = 128 rows of
 * K/V projections), and split K on top when even that is too few workgroups (dW of small N).
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { checkMatmulArgs, chooseSplitK, gemmUniforms, runGemm, type MatmulArgs } from './matmul.js';
import { generateWgsl, type BindingDecl, type Program } from './program.js';

const WG = 256;
/** Workgroup memory every kernel may use (Dawn's limit on the H200 and on SwiftShader). */
const WORKGROUP_BYTES = 32768;
/** Workgroups that fill a large GPU (132 SMs on an H100/H200). */
const FILL = 132;

const bindings = (t: 'f32' | 'f16'): BindingDecl[] => [
  { name: 'A', access: 'read', type: t },
  { name: 'B', access: 'read', type: t },
  { name: 'C', access: 'read_write', type: 'f32' },
];
const range = (n: number) => [...Array(n).keys()];

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
}

/**
 * One operand tile's elements for this invocation: `count` = rows·cols / WG of them, consecutive
 * invocations walking the operand's contiguous axis. `rows`×`cols` is the tile in the operand's
 * own orientation (op(A) is rows = M, cols = K; op(B) rows = K, cols = N). Each element gives its
 * tile coordinates (WGSL `let`s r and c), its in-range condition and its address.
 */
function tileElements(o: StageSpec): { rc: string; inRange: string; value: string }[] {
  const { name, rows, cols } = o;
  const k = o.kVar ?? 'k0';
  // Stored layout: A is [M, K] (or [K, M] when transposed), B is [K, N] (or [N, K]); so the
  // stored outer axis is the tile's column axis exactly when the operand is transposed.
  const kMajor = o.trans;
  const inner = kMajor ? rows : cols; // tile extent along the stored contiguous axis
  const r0 = name === 'A' ? 'row0' : k, c0 = name === 'A' ? k : 'col0';
  const rLim = name === 'A' ? 'u.M' : 'kEnd', cLim = name === 'A' ? 'kEnd' : 'u.N';
  const ld = name === 'A' ? 'u.lda' : 'u.ldb', off = name === 'A' ? 'u.offA' : 'u.offB';
  return range((rows * cols) / WG).map((i) => {
    const e = `(lidx + ${WG * i}u)`;
    const [r, c] = kMajor ? [`${e} % ${inner}u`, `${e} / ${inner}u`] : [`${e} / ${inner}u`, `${e} % ${inner}u`];
    const addr = kMajor ? `${off} + (${c0} + c) * ${ld} + ${r0} + r` : `${off} + (${r0} + r) * ${ld} + ${c0} + c`;
    return { rc: `let r = ${r}; let c = ${c};`, inRange: `${r0} + r < ${rLim} && ${c0} + c < ${cLim}`, value: `${o.cast}(${name}[${addr}])` };
  });
}

/** The WGSL lines that stage one operand tile into workgroup memory (out-of-range elements are zero). */
function stageTile(o: StageSpec): string {
  return tileElements(o).map((e) => `{ ${e.rc} var v = ${o.zero};
      if (${e.inRange}) { v = ${e.value}; }
      ${o.store('r', 'c', 'v')} }`).join('\n    ');
}

/** Register staging: `load` reads this invocation's elements of a tile into p<name><i>, `store` writes them to workgroup memory. */
function stageViaRegisters(o: StageSpec): { decl: string; load: string; store: string } {
  const els = tileElements(o);
  const v = (i: number) => `p${o.name}${i}`;
  return {
    decl: els.map((_, i) => `var ${v(i)} = ${o.zero};`).join(' '),
    load: els.map((e, i) => `{ ${e.rc} ${v(i)} = ${o.zero}; if (${e.inRange}) { ${v(i)} = ${e.value}; } }`).join('\n      '),
    store: els.map((e, i) => `{ ${e.rc} ${o.store('r', 'c', v(i))} }`).join('\n      '),
  };
}

/** Common head of both kernels: tile origin, K range of this slice, C offset of this slice. */
const HEAD = (bm: number, bn: number, swap = false) => `
  let row0 = wid.${swap ? 'x' : 'y'} * ${bm}u; let col0 = wid.${swap ? 'y' : 'x'} * ${bn}u;
  let kBegin = wid.z * u.slice; let kEnd = min(u.K, kBegin + u.slice);
  let offC = u.offC + wid.z * u.M * u.ldc;`;

const cStore = (accumulate: boolean, gm: string, gn: string, v: string) =>
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
}

/**
 * The variants gemmF32 runs on the 128×128 and the 64×64 tile (H200 sweeps, session 7,
 * bench/results/matmul-h200.md): written-out K steps gain 5-8% on the large tile and lose a little
 * on the small one.
 */
export const F32_DEFAULT: F32Variant = { bk: 16, prefetch: true, unroll: true };
export const F32_SMALL_DEFAULT: F32Variant = { bk: 16, prefetch: true };

/** fp32 program; `small` = 64×64 tile (4×4 per invocation) instead of 128×128 (8×8). */
export function gemmF32Program(args: MatmulArgs, split: number, small = false, variant: F32Variant = small ? F32_SMALL_DEFAULT : F32_DEFAULT): Program {
  const { transA = false, transB = false } = args;
  const accumulate = split === 1 && (args.accumulate ?? false);
  const q = small ? 1 : 2; // 4×4 quadrants per invocation along each axis
  const bk = variant.bk ?? 16, double = variant.double ?? false, prefetch = double || (variant.prefetch ?? false), swap = variant.swap ?? false, unroll = variant.unroll ?? false;
  const bm = 64 * q, bn = 64 * q, pitch = bm + 4; // pitch in floats (bm = bn)
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  const P4 = pitch / 4, bufVec4 = bk * P4;
  const bytes = 2 * (double ? 2 : 1) * bufVec4 * 16;
  if (bytes > WORKGROUP_BYTES) fail('usage', `gemm_f32: K step ${bk}${double ? ', double-buffered,' : ''} needs ${bytes} bytes of workgroup memory for a ${bm}x${bn} tile (at most ${WORKGROUP_BYTES})`);
  return {
    name: 'gemm_f32',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${bm};bk=${bk};pf=${prefetch ? 1 : 0};db=${double ? 1 : 0};swap=${swap ? 1 : 0};unroll=${unroll ? 1 : 0}`,
    workgroupSize: [WG],
    dispatch: swap ? [Math.ceil(args.m / bm), Math.ceil(args.n / bn), split] : [Math.ceil(args.n / bn), Math.ceil(args.m / bm), split],
    uniforms: gemmUniforms(args, split, slice),
    bindings: bindings('f32'),
    source: () => {
      // As is [k][m]: A's (r = m, c = k) goes to row c; Bs is [k][n]: B's (r = k, c = n) to row r.
      // `buf` selects one of the two buffers of the double-buffered form.
      const putA = (buf: string) => (r: string, c: string, v: string) => `As[${buf}(${c}) * ${P4}u + (${r}) / 4u][(${r}) % 4u] = ${v};`;
      const putB = (buf: string) => (r: string, c: string, v: string) => `Bs[${buf}(${r}) * ${P4}u + (${c}) / 4u][(${c}) % 4u] = ${v};`;
      const spec = (name: 'A' | 'B', buf: string, kVar = 'k0') => name === 'A'
        ? { name, trans: transA, rows: bm, cols: bk, zero: '0.0', cast: 'f32', store: putA(buf), kVar } as const
        : { name, trans: transB, rows: bk, cols: bn, zero: '0.0', cast: 'f32', store: putB(buf), kVar } as const;
      const I = range(4 * q);
      // Element i of the invocation's rows: quadrant i/4 (offset 16·quadrant vec4s), component i%4.
      const frag = (v: string, i: number) => `${v}${i >> 2}[${i & 3}]`;
      const step = (base: string, kk: string) => `{
      ${range(q).map((h) => `let a${h} = As[${base}${kk} * ${P4}u + ${16 * h}u + ty]; let b${h} = Bs[${base}${kk} * ${P4}u + ${16 * h}u + tx];`).join(' ')}
      ${I.map((i) => I.map((j) => `c${i}_${j} = fma(${frag('a', i)}, ${frag('b', j)}, c${i}_${j});`).join(' ')).join('\n      ')}
    }`;
      const math = (base: string) => unroll ? range(bk).map((kk) => step(base, `${kk}u`)).join('\n    ') : `for (var kk = 0u; kk < ${bk}u; kk++) ${step(base, 'kk')}`;
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
        const ra = stageViaRegisters(spec('A', 'cur * ' + bufVec4 + 'u + ')), rb = stageViaRegisters(spec('B', 'cur * ' + bufVec4 + 'u + '));
        const na = stageViaRegisters(spec('A', 'nxt * ' + bufVec4 + 'u + ', 'kn')), nb = stageViaRegisters(spec('B', 'nxt * ' + bufVec4 + 'u + ', 'kn'));
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
    ${math(`cur * ${bufVec4}u + `)}
    if (kn < kEnd) { ${na.store}
      ${nb.store} }
    workgroupBarrier();
    cur = nxt;
  }`;
      }
      const bufs = double ? 2 : 1;
      return {
        decls: `
var<workgroup> As: array<vec4<f32>, ${bufs * bufVec4}>; // [k][m], pitch ${pitch} floats${double ? ', two buffers' : ''}
var<workgroup> Bs: array<vec4<f32>, ${bufs * bufVec4}>; // [k][n]`,
        main: `
  let tx = lidx % 16u; let ty = lidx / 16u;${HEAD(bm, bn, swap)}
  ${I.flatMap((i) => I.map((j) => `var c${i}_${j} = 0.0;`)).join(' ')}
  ${loop}
  ${I.flatMap((i) => I.map((j) => cStore(accumulate, `(row0 + ${64 * (i >> 2)}u + 4u * ty + ${i & 3}u)`, `(col0 + ${64 * (j >> 2)}u + 4u * tx + ${j & 3}u)`, `c${i}_${j}`))).join('\n  ')}`,
      };
    },
  };
}

/** One f16 × f16 → f32 subgroup-matrix shape of the adapter (GPUAdapterInfo.subgroupMatrixConfigs). */
export interface MatrixConfig {
  M: number;
  N: number;
  K: number;
}

/** The f16→f32 config to use (the largest M·N·K whose sides divide the kernel's blocks), or undefined. */
export function pickF16Config(configs: readonly { componentType: string; resultComponentType: string; M: number; N: number; K: number }[]): MatrixConfig | undefined {
  const ok = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && 32 % c.M === 0 && 16 % c.N === 0 && 32 % c.K === 0);
  ok.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K);
  return ok[0] ? { M: ok[0].M, N: ok[0].N, K: ok[0].K } : undefined;
}

/**
 * WGSL spelling of subgroupMatrixLoad/Store: 'bool' = (ptr, offset, col_major, stride) as Dawn
 * first shipped it; 'template' = the later <T, row_major>(ptr, offset, stride) form.
 */
export type MatrixSyntax = 'bool' | 'template';

const mLoad = (s: MatrixSyntax, t: string, ptr: string, off: string, stride: string, colMajor = false) =>
  s === 'bool' ? `subgroupMatrixLoad<${t}>(${ptr}, ${off}, ${colMajor}, ${stride})` : `subgroupMatrixLoad<${t}, ${colMajor ? 'col_major' : 'row_major'}>(${ptr}, ${off}, ${stride})`;
const mStore = (s: MatrixSyntax, ptr: string, off: string, v: string, stride: string) =>
  s === 'bool' ? `subgroupMatrixStore(${ptr}, ${off}, ${v}, false, ${stride})` : `subgroupMatrixStore<row_major>(${ptr}, ${off}, ${v}, ${stride})`;

/**
 * The spelling of the matrix builtins this device's WGSL compiler accepts, found by compiling the
 * real kernel in each; `messages` holds the compiler's errors of the spellings that failed.
 */
export async function probeMatrixSyntax(device: GPUDevice, config: MatrixConfig): Promise<{ syntax?: MatrixSyntax; messages: string[] }> {
  const view = { buffer: undefined as unknown as GPUBuffer, ld: 256 };
  const messages: string[] = [];
  for (const syntax of ['template', 'bool'] as const) {
    const code = generateWgsl(gemmF16Program({ m: 256, n: 256, k: 256, a: view, b: view, c: view, transB: true }, 1, { config, syntax }));
    device.pushErrorScope('validation');
    const info = await device.createShaderModule({ code }).getCompilationInfo();
    await device.popErrorScope();
    const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${syntax} ${m.lineNum}:${m.linePos} ${m.message}`);
    if (!errors.length) return { syntax, messages };
    messages.push(...errors);
  }
  return { messages };
}

export interface F16Options {
  config: MatrixConfig;
  syntax?: MatrixSyntax;
  /** Operands A and B are f16 in memory (default f32, rounded to f16 when staged). */
  halfOperands?: boolean;
  /** Always the scalar-staged kernel (gemmF16Program), even where gemmF16VecProgram fits (benches). */
  scalar?: boolean;
}

/** One K step of a gemm_f16 kernel: load mt left and nt right matrices per matrix K step, mt·nt MMAs into acc<i>_<j>. */
function mmaSteps(bk: number, ck: number, mt: number, nt: number, left: (i: number, s: number) => string, right: (j: number, s: number) => string): string {
  return range(bk / ck).map((s) => ` {
      ${range(mt).map((i) => `let l${i} = ${left(i, s)};`).join(' ')}
      ${range(nt).map((j) => `let r${j} = ${right(j, s)};`).join(' ')}
      ${range(mt).map((i) => range(nt).map((j) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`).join(' ')).join('\n      ')}
    }`).join('');
}

/**
 * gemm_f16's per-element epilogue: each result matrix through the subgroup's slot of Cs, then
 * stored with bounds, alpha and accumulation as plain code (workgroup-uniform: it has barriers).
 */
function cellEpilogue(syntax: MatrixSyntax, accumulate: boolean, c: MatrixConfig, sgm: number, sgn: number, mt: number, nt: number): string {
  const { M: cm, N: cn } = c;
  return range(mt).flatMap((i) => range(nt).map((j) => `
  ${mStore(syntax, '&Cs', `sg * ${cm * cn}u`, `acc${i}_${j}`, `${cn}u`)};
  workgroupBarrier();
  for (var t = lane; t < ${cm * cn}u; t += 32u) {
    let gm = row0 + sr * ${sgm}u + ${i * cm}u + t / ${cn}u; let gn = col0 + sc * ${sgn}u + ${j * cn}u + t % ${cn}u;
    ${cStore(accumulate, 'gm', 'gn', `Cs[sg * ${cm * cn}u + t]`)}
  }
  workgroupBarrier();`)).join('');
}

/** Subgroup-matrix program (see header); `small` = 64×64 workgroup tile instead of 128×128. */
export function gemmF16Program(args: MatmulArgs, split: number, opts: F16Options, small = false): Program {
  const { transA = false, transB = false } = args;
  const { M: cm, N: cn, K: ck } = opts.config;
  const syntax = opts.syntax ?? 'bool';
  const accumulate = split === 1 && (args.accumulate ?? false);
  const sgm = small ? 32 : 64, sgn = small ? 16 : 32; // rows, columns per subgroup (2×4 subgroups)
  const mt = sgm / cm, nt = sgn / cn, bm = 2 * sgm, bn = 4 * sgn, bk = 32;
  if (!Number.isInteger(mt) || !Number.isInteger(nt) || bk % ck) fail('usage', `gemm_f16: subgroup matrix ${cm}x${cn}x${ck} does not tile a ${sgm}x${sgn}x${bk} block`);
  const pa = bk + 8, pb = bn + 8; // row pitches (f16 elements; multiples of 8 = 16 bytes)
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  const L = `subgroup_matrix_left<f16, ${ck}, ${cm}>`, R = `subgroup_matrix_right<f16, ${cn}, ${ck}>`;
  return {
    name: 'gemm_f16_sgmatrix',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${bm};cfg=${cm}x${cn}x${ck};${syntax};in=${opts.halfOperands ? 'f16' : 'f32'}`,
    workgroupSize: [WG],
    dispatch: [Math.ceil(args.n / bn), Math.ceil(args.m / bm), split],
    uniforms: gemmUniforms(args, split, slice),
    bindings: bindings(opts.halfOperands ? 'f16' : 'f32'),
    extensions: ['f16', 'chromium_experimental_subgroup_matrix'],
    // Matrix offsets derive from lidx / 32 (the subgroup's index): uniform within each subgroup
    // when subgroups are 32 consecutive invocations (NVIDIA), which the analysis cannot see.
    diagnosticsOff: ['chromium.subgroup_matrix_uniformity'],
    source: () => {
      const acc = (i: number, j: number) => `acc${i}_${j}`;
      const steps = mmaSteps(bk, ck, mt, nt,
        (i, s) => mLoad(syntax, L, '&As', `(sr * ${sgm}u + ${i * cm}u) * ${pa}u + ${s * ck}u`, `${pa}u`),
        (j, s) => mLoad(syntax, R, '&Bs', `${s * ck * pb}u + sc * ${sgn}u + ${j * cn}u`, `${pb}u`));
      const epilogue = cellEpilogue(syntax, accumulate, opts.config, sgm, sgn, mt, nt);
      return {
        decls: `
var<workgroup> As: array<f16, ${bm * pa}>; // [m][k]
var<workgroup> Bs: array<f16, ${bk * pb}>; // [k][n]
var<workgroup> Cs: array<f32, ${8 * cm * cn}>; // one result matrix per subgroup (epilogue)`,
        main: `
  let sg = lidx / 32u; let lane = lidx % 32u; let sr = sg / 4u; let sc = sg % 4u;${HEAD(bm, bn)}
  ${range(mt).flatMap((i) => range(nt).map((j) => `var ${acc(i, j)} = subgroup_matrix_result<f32, ${cn}, ${cm}>();`)).join(' ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stageTile({ name: 'A', trans: transA, rows: bm, cols: bk, zero: 'f16(0.0)', cast: 'f16', store: (r, c, v) => `As[(${r}) * ${pa}u + ${c}] = ${v};` })}
    ${stageTile({ name: 'B', trans: transB, rows: bk, cols: bn, zero: 'f16(0.0)', cast: 'f16', store: (r, c, v) => `Bs[(${r}) * ${pb}u + ${c}] = ${v};` })}
    workgroupBarrier();${steps}
    workgroupBarrier();
  }${epilogue}`,
      };
    },
  };
}

/**
 * Workgroups a GEMM is split into at least, where K is long enough: 8 per SM. On the H200 the
 * 266-tile weight gradients of the MLP (4864×896, K = 4096) run 22 TFLOP/s unsplit and 30-31 in 4-6
 * K slices, the 224-tile K = 4864 products 30 → 33 in 4-5 (bench/results/matmul-h200.md, session 7).
 */
const SPLIT_TARGET = 8 * FILL;
/** Shortest K range of one slice. */
const MIN_SLICE = 512;

/**
 * Whether gemmF16VecProgram can run `args`: f32 operands whose contiguous axes, leading dimensions
 * and offsets are multiples of 4 (every vec4 of a tile is then wholly inside or outside).
 */
export function f16VecFits(args: MatmulArgs, opts: F16Options): boolean {
  const { m, n, k, transA = false, transB = false } = args;
  const four = (x: number) => x % 4 === 0;
  return !opts.halfOperands && four(args.a.ld) && four(args.a.offset ?? 0) && four(args.b.ld) && four(args.b.offset ?? 0)
    && four(transA ? m : k) && four(transB ? k : n);
}

/**
 * gemm_f16 for the step's shapes: f32 operands staged a vec4 at a time (converted to f16 in
 * workgroup memory, each operand kept in its stored orientation and read as a row- or column-major
 * subgroup matrix, so staging never transposes), the next K step prefetched into registers, and
 * interior tiles stored straight from the result matrices (C loaded into them first when
 * accumulating); edge tiles and alpha ≠ 1 take gemmF16Program's per-element epilogue. 128×128×32
 * tiles, 8 subgroups of 32 lanes in a 2×4 grid, each a 64×32 block of cm×cn results.
 */
export function gemmF16VecProgram(args: MatmulArgs, split: number, opts: F16Options): Program {
  const { transA = false, transB = false } = args;
  const { M: cm, N: cn, K: ck } = opts.config;
  const syntax = opts.syntax ?? 'bool';
  const accumulate = split === 1 && (args.accumulate ?? false);
  const sgm = 64, sgn = 32, bm = 128, bn = 128, bk = 32;
  const mt = sgm / cm, nt = sgn / cn;
  if (!Number.isInteger(mt) || !Number.isInteger(nt) || bk % ck) fail('usage', `gemm_f16: subgroup matrix ${cm}x${cn}x${ck} does not tile a ${sgm}x${sgn}x${bk} block`);
  // Workgroup layouts (f16 elements; pitches multiples of 8 = 16 bytes): A as stored, [m][k] when
  // K is its contiguous axis, else [k][m]; B as stored, [k][n] or [n][k].
  const aK = !transA, bN = !transB;
  const pa = aK ? bk + 8 : bm + 8, aRows = aK ? bm : bk, aVec = (aK ? bk : bm) / 4;
  const pb = bN ? bn + 8 : bk + 8, bRows = bN ? bk : bn, bVec = (bN ? bn : bk) / 4;
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  const L = `subgroup_matrix_left<f16, ${ck}, ${cm}>`, R = `subgroup_matrix_right<f16, ${cn}, ${ck}>`, Res = `subgroup_matrix_result<f32, ${cn}, ${cm}>`;
  const per = (aRows * aVec) / WG; // vec4s per invocation per operand (4)
  /** One operand's vec4 `i` of this invocation: tile row/column, global vec4 index, in-range test. */
  const vec = (name: 'A' | 'B', i: number, k: string) => {
    const cols = name === 'A' ? aVec : bVec;
    const e = `(lidx + ${WG * i}u)`;
    const rc = `let r = ${e} / ${cols}u; let c = 4u * (${e} % ${cols}u);`;
    // Stored row index and column of the element, and their limits.
    const [sr, sc, rl, cl, ld, off] = name === 'A'
      ? (aK ? ['row0 + r', `${k} + c`, 'u.M', 'kEnd', 'u.lda', 'u.offA'] : [`${k} + r`, 'row0 + c', 'kEnd', 'u.M', 'u.lda', 'u.offA'])
      : (bN ? [`${k} + r`, 'col0 + c', 'kEnd', 'u.N', 'u.ldb', 'u.offB'] : ['col0 + r', `${k} + c`, 'u.N', 'kEnd', 'u.ldb', 'u.offB']);
    return { rc, inRange: `${sr} < ${rl} && ${sc} < ${cl}`, index: `(${off} + (${sr}) * ${ld} + ${sc}) / 4u` };
  };
  const loads = (k: string) => range(per).map((i) => ['A', 'B'].map((name) => {
    const v = vec(name as 'A' | 'B', i, k);
    return `{ ${v.rc} p${name}${i} = vec4<f32>(0.0); if (${v.inRange}) { p${name}${i} = ${name}[${v.index}]; } }`;
  }).join('\n      ')).join('\n      ');
  const stores = range(per).map((i) => ['A', 'B'].map((name) => {
    const v = vec(name as 'A' | 'B', i, 'k0');
    const [buf, pitch] = name === 'A' ? ['As', pa] : ['Bs', pb];
    return `{ ${v.rc} let h = vec4<f16>(p${name}${i}); ${range(4).map((t) => `${buf}[r * ${pitch}u + c + ${t}u] = h[${t}];`).join(' ')} }`;
  }).join('\n      ')).join('\n      ');
  const left = (i: number, s: number) => aK
    ? mLoad(syntax, L, '&As', `(sr * ${sgm}u + ${i * cm}u) * ${pa}u + ${s * ck}u`, `${pa}u`)
    : mLoad(syntax, L, '&As', `${s * ck * pa}u + sr * ${sgm}u + ${i * cm}u`, `${pa}u`, true);
  const right = (j: number, s: number) => bN
    ? mLoad(syntax, R, '&Bs', `${s * ck * pb}u + sc * ${sgn}u + ${j * cn}u`, `${pb}u`)
    : mLoad(syntax, R, '&Bs', `(sc * ${sgn}u + ${j * cn}u) * ${pb}u + ${s * ck}u`, `${pb}u`, true);
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const cOff = (i: number, j: number) => `offC + (row0 + sr * ${sgm}u + ${i * cm}u) * u.ldc + col0 + sc * ${sgn}u + ${j * cn}u`;
  return {
    name: 'gemm_f16_sgmatrix_vec',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};cfg=${cm}x${cn}x${ck};${syntax}`,
    workgroupSize: [WG],
    dispatch: [Math.ceil(args.n / bn), Math.ceil(args.m / bm), split],
    uniforms: gemmUniforms(args, split, slice),
    bindings: [{ name: 'A', access: 'read', type: 'vec4<f32>' }, { name: 'B', access: 'read', type: 'vec4<f32>' }, { name: 'C', access: 'read_write', type: 'f32' }],
    extensions: ['f16', 'chromium_experimental_subgroup_matrix'],
    // Matrix offsets derive from lidx / 32 (uniform within each subgroup of 32 consecutive lanes,
    // NVIDIA's), and the direct-store branch from the workgroup id and uniforms.
    diagnosticsOff: ['chromium.subgroup_matrix_uniformity'],
    source: () => {
      const steps = mmaSteps(bk, ck, mt, nt, left, right);
      const slow = cellEpilogue(syntax, accumulate, opts.config, sgm, sgn, mt, nt);
      return {
        decls: `
var<workgroup> As: array<f16, ${aRows * pa}>; // A's tile as stored: ${aK ? '[m][k]' : '[k][m]'}
var<workgroup> Bs: array<f16, ${bRows * pb}>; // B's tile as stored: ${bN ? '[k][n]' : '[n][k]'}
var<workgroup> Cs: array<f32, ${8 * cm * cn}>; // one result matrix per subgroup (edge epilogue)`,
        main: `
  let sg = lidx / 32u; let lane = lidx % 32u; let sr = sg / 4u; let sc = sg % 4u;${HEAD(bm, bn)}
  let interior = row0 + ${bm}u <= u.M && col0 + ${bn}u <= u.N && u.alpha == 1.0;
  ${range(mt).flatMap((i) => range(nt).map((j) => `var ${acc(i, j)} = ${Res}();`)).join(' ')}
  ${accumulate ? `if (interior) {
    ${range(mt).flatMap((i) => range(nt).map((j) => `${acc(i, j)} = ${mLoad(syntax, Res, '&C', cOff(i, j), 'u.ldc')};`)).join('\n    ')}
  }` : ''}
  ${range(per).map((i) => `var pA${i} = vec4<f32>(0.0); var pB${i} = vec4<f32>(0.0);`).join(' ')}
  if (kBegin < kEnd) { let k0 = kBegin;
      ${loads('k0')} }
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stores}
    workgroupBarrier();
    let kn = k0 + ${bk}u;
    if (kn < kEnd) {
      ${loads('kn')} }${steps}
    workgroupBarrier();
  }
  if (interior) {
    ${range(mt).flatMap((i) => range(nt).map((j) => `${mStore(syntax, '&C', cOff(i, j), acc(i, j), 'u.ldc')};`)).join('\n    ')}
  } else {${slow}
  }`,
      };
    },
  };
}

/** Tile size (small or not) and K slices for an M×N×K product on 128×128 / 64×64 tiles. */
export function gemmPlan(args: Pick<MatmulArgs, 'm' | 'n' | 'k' | 'tile' | 'splitK'>): { small: boolean; split: number } {
  const { m, n, k } = args;
  // args.tile (tests, benches) forces the size: tm = 8 is the 128×128 tile, anything less 64×64.
  const small = args.tile ? args.tile.tm < 8 : Math.ceil(m / 128) * Math.ceil(n / 128) < FILL;
  const edge = small ? 64 : 128;
  const tiles = Math.ceil(m / edge) * Math.ceil(n / edge);
  const split = args.splitK ?? (tiles >= SPLIT_TARGET ? 1 : Math.max(1, Math.min(Math.ceil(SPLIT_TARGET / tiles), Math.floor(k / MIN_SLICE), 64)));
  return { small, split: Math.max(1, Math.min(split, Math.ceil(k / 32))) };
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
    const split = Math.max(1, Math.min(chooseSplitK(args.m, args.n, args.k, { tm: t, tn: t }), Math.ceil(args.k / 32)));
    runGemm(ctx, args, split, (a, s) => gemmF32Program(a, s, small, { bk: 16 }));
    return;
  }
  const { small, split } = gemmPlan(args);
  const v = variant ?? (small ? F32_SMALL_DEFAULT : F32_DEFAULT);
  runGemm(ctx, args, split, (a, s) => gemmF32Program(a, s, small, v));
}

/** Validate and record an f16-operand, f32-accumulate GEMM on subgroup matrices (see header). */
export function gemmF16(ctx: GpuContext, args: MatmulArgs, opts: F16Options): void {
  if (!ctx.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) || !ctx.device.features.has('shader-f16'))
    fail('usage', "gemm_f16: the device lacks 'chromium-experimental-subgroup-matrix' or 'shader-f16' (dawn.node: create it with DAWN_F16_MATRIX_TOGGLES and request both features)");
  checkMatmulArgs('gemm_f16', args, opts.halfOperands ? 2 : 4);
  if (args.m === 0 || args.n === 0) return;
  const { small, split } = gemmPlan(args);
  if (!small && !opts.scalar && f16VecFits(args, opts)) runGemm(ctx, args, split, (a, s) => gemmF16VecProgram(a, s, opts));
  else runGemm(ctx, args, split, (a, s) => gemmF16Program(a, s, opts, small));
}
