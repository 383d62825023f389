/// <reference types="@webgpu/types" />
/**
 * `gemmF16`: the step's GEMMs (./gemm.ts) on the tensor cores through
 * `chromium_experimental_subgroup_matrix` — f16 operands (fp32 or f16 in memory, rounded to f16
 * when staged), f32 accumulation. Subgroups of 32 lanes per workgroup in a grid (the vec4 kernel:
 * 2×2 by default, F16_DEFAULT; the scalar-staged one: 2×4); each owns a (mt·cm)×(nt·cn) block of cm×cn result matrices of the adapter's f16→f32 config
 * (`pickF16Config`). Two kernels: `gemmF16VecProgram` (fp32 operands whose rows are whole vec4s:
 * the step's shapes) and `gemmF16Program` (any view, f16 operands, the 64×64 tile). Edge tiles go
 * through one cm×cn workgroup slot per subgroup, so bounds, alpha and accumulation are plain
 * per-element code and any M, N, K works. Which kernel runs and how K is split: `f16Plan` (./gemm-f16-plan.ts). (Two
 * experimental kernels on f16 operands, measured by the benches only: ./gemm-f16-direct.ts.)
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { checkMatmulArgs, gemmUniforms, runGemm, type MatmulArgs } from './matmul.js';
import { generateWgsl, type Program } from './program.js';
import { batchDispatch, bindings, cStore, HEAD, range, stageTile, WG, WORKGROUP_BYTES } from './gemm.js';
import { F16_DEFAULT, f16Plan, type F16Options, type MatrixConfig, type MatrixSyntax } from './gemm-f16-plan.js';

/** The f16→f32 config to use (the largest M·N·K whose sides divide the kernel's blocks), or undefined. */
export function pickF16Config(configs: readonly { componentType: string; resultComponentType: string; M: number; N: number; K: number }[]): MatrixConfig | undefined {
  const ok = configs.filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && 32 % c.M === 0 && 16 % c.N === 0 && 32 % c.K === 0);
  ok.sort((a, b) => b.M * b.N * b.K - a.M * a.N * a.K);
  return ok[0] ? { M: ok[0].M, N: ok[0].N, K: ok[0].K } : undefined;
}

/** subgroupMatrixLoad / subgroupMatrixStore in spelling `s` (MatrixSyntax). */
export const mLoad = (s: MatrixSyntax, t: string, ptr: string, off: string, stride: string, colMajor = false) =>
  s === 'bool' ? `subgroupMatrixLoad<${t}>(${ptr}, ${off}, ${colMajor}, ${stride})` : `subgroupMatrixLoad<${t}, ${colMajor ? 'col_major' : 'row_major'}>(${ptr}, ${off}, ${stride})`;
export const mStore = (s: MatrixSyntax, ptr: string, off: string, v: string, stride: string) =>
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
  const batched = !!args.batch, bz = batchDispatch(args, split);
  const L = `subgroup_matrix_left<f16, ${ck}, ${cm}>`, R = `subgroup_matrix_right<f16, ${cn}, ${ck}>`;
  return {
    name: 'gemm_f16_sgmatrix',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};tile=${bm};cfg=${cm}x${cn}x${ck};${syntax};in=${opts.halfOperands ? 'f16' : 'f32'}${bz.key}`,
    workgroupSize: [WG],
    dispatch: [Math.ceil(args.n / bn), Math.ceil(args.m / bm), bz.z],
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
  let sg = lidx / 32u; let lane = lidx % 32u; let sr = sg / 4u; let sc = sg % 4u;${HEAD(bm, bn, false, args.batch)}
  ${range(mt).flatMap((i) => range(nt).map((j) => `var ${acc(i, j)} = subgroup_matrix_result<f32, ${cn}, ${cm}>();`)).join(' ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stageTile({ name: 'A', trans: transA, rows: bm, cols: bk, zero: 'f16(0.0)', cast: 'f16', store: (r, c, v) => `As[(${r}) * ${pa}u + ${c}] = ${v};`, batched })}
    ${stageTile({ name: 'B', trans: transB, rows: bk, cols: bn, zero: 'f16(0.0)', cast: 'f16', store: (r, c, v) => `Bs[(${r}) * ${pb}u + ${c}] = ${v};`, batched })}
    workgroupBarrier();${steps}
    workgroupBarrier();
  }${epilogue}`,
      };
    },
  };
}

/**
 * gemm_f16 for the step's shapes: f32 operands staged a vec4 at a time (converted to f16 in
 * workgroup memory, each operand kept in its stored orientation and read as a row- or column-major
 * subgroup matrix, so staging never transposes), the next K step prefetched into registers, and
 * interior tiles stored straight from the result matrices (C loaded into them first when
 * accumulating); edge tiles and alpha ≠ 1 take gemmF16Program's per-element epilogue. The tile is
 * `opts.variant` (default F16_DEFAULT: 128×128×32, 4 subgroups of 32 lanes in a 2×2 grid, each a
 * 64×64 block of cm×cn results).
 */
export function gemmF16VecProgram(args: MatmulArgs, split: number, opts: F16Options): Program {
  const { transA = false, transB = false } = args;
  const { M: cm, N: cn, K: ck } = opts.config;
  const syntax = opts.syntax ?? 'bool';
  const accumulate = split === 1 && (args.accumulate ?? false);
  const v = opts.variant ?? F16_DEFAULT;
  const { sgRows, sgCols, sgm, sgn, bk, double = false, probe, blocks = false } = v;
  const bm = sgRows * sgm, bn = sgCols * sgn, wg = 32 * sgRows * sgCols, subgroups = sgRows * sgCols;
  const mt = sgm / cm, nt = sgn / cn;
  if (!Number.isInteger(mt) || !Number.isInteger(nt) || bk % ck || bk % 4) fail('usage', `gemm_f16: subgroup matrix ${cm}x${cn}x${ck} does not tile a ${sgm}x${sgn}x${bk} block`);
  if (blocks && double) fail('usage', 'gemm_f16: the per-subgroup blocks layout is not double-buffered');
  // Workgroup layouts (f16 elements; pitches multiples of 8 = 16 bytes): A as stored, [m][k] when
  // K is its contiguous axis, else [k][m]; B as stored, [k][n] or [n][k]. `blocks`: each operand
  // cut along M (A) or N (B) into one block per subgroup row or column, As[sr] / Bs[sc], each block
  // in the operand's stored orientation (a [k][m] block's rows are sgm wide).
  const aK = !transA, bN = !transB;
  const pa = aK ? bk + 8 : (blocks ? sgm : bm) + 8, aRows = aK ? bm : bk, aVec = (aK ? bk : bm) / 4;
  const pb = bN ? (blocks ? sgn : bn) + 8 : bk + 8, bRows = bN ? bk : bn, bVec = (bN ? bn : bk) / 4;
  const blockA = (aK ? sgm : bk) * pa, blockB = (bN ? bk : sgn) * pb;
  /** Where element t of the staged vec4 at stored row r, column c of operand `name` goes. */
  const cell = (name: 'A' | 'B', t: number): string => {
    const [buf, pitch, base] = name === 'A' ? ['As', pa, double ? 'wA + ' : ''] : ['Bs', pb, double ? 'wB + ' : ''];
    if (!blocks) return `${buf}[${base}r * ${pitch}u + c + ${t}u]`;
    // The block is the M (A) or N (B) index over the subgroup's extent; rows split when that
    // index is the stored row (A [m][k], B [n][k]), columns when it is the stored column.
    const ext = name === 'A' ? sgm : sgn, alongRows = name === 'A' ? aK : !bN;
    return alongRows ? `${buf}[r / ${ext}u][(r % ${ext}u) * ${pitch}u + c + ${t}u]` : `${buf}[c / ${ext}u][r * ${pitch}u + c % ${ext}u + ${t}u]`;
  };
  const slice = Math.ceil(Math.ceil(args.k / split) / bk) * bk;
  const batched = !!args.batch, bz = batchDispatch(args, split), ofs = batched ? '' : 'u.';
  const L = `subgroup_matrix_left<f16, ${ck}, ${cm}>`, R = `subgroup_matrix_right<f16, ${cn}, ${ck}>`, Res = `subgroup_matrix_result<f32, ${cn}, ${cm}>`;
  // vec4s per invocation of each operand (4 each on the default tile).
  const perA = (aRows * aVec) / wg, perB = (bRows * bVec) / wg;
  if (!Number.isInteger(perA) || !Number.isInteger(perB)) fail('usage', `gemm_f16: a ${bm}x${bn}x${bk} tile does not stage evenly over ${wg} invocations`);
  /** One operand's vec4 `i` of this invocation: tile row/column, global vec4 index, in-range test. */
  const vec = (name: 'A' | 'B', i: number, k: string) => {
    const cols = name === 'A' ? aVec : bVec;
    const e = `(lidx + ${wg * i}u)`;
    const rc = `let r = ${e} / ${cols}u; let c = 4u * (${e} % ${cols}u);`;
    // Stored row index and column of the element, and their limits.
    const [sr, sc, rl, cl, ld, off] = name === 'A'
      ? (aK ? ['row0 + r', `${k} + c`, 'u.M', 'kEnd', 'u.lda', `${ofs}offA`] : [`${k} + r`, 'row0 + c', 'kEnd', 'u.M', 'u.lda', `${ofs}offA`])
      : (bN ? [`${k} + r`, 'col0 + c', 'kEnd', 'u.N', 'u.ldb', `${ofs}offB`] : ['col0 + r', `${k} + c`, 'u.N', 'kEnd', 'u.ldb', `${ofs}offB`]);
    return { rc, inRange: `${sr} < ${rl} && ${sc} < ${cl}`, index: `(${off} + (${sr}) * ${ld} + ${sc}) / 4u` };
  };
  // Operand `name`'s vec4s of this invocation, interleaved A, B as far as both have one.
  const each = (f: (name: 'A' | 'B', i: number) => string) =>
    range(Math.max(perA, perB)).map((i) => (['A', 'B'] as const).filter((name) => i < (name === 'A' ? perA : perB)).map((name) => f(name, i)).join('\n      ')).join('\n      ');
  const loads = (k: string) => probe === 'mma' ? '' : each((name, i) => {
    const x = vec(name, i, k);
    return `{ ${x.rc} p${name}${i} = vec4<f32>(0.0); if (${x.inRange}) { p${name}${i} = ${name}[${x.index}]; } }`;
  });
  const stores = probe === 'mma' ? '' : each((name, i) => {
    const x = vec(name, i, 'k0');
    return `{ ${x.rc} let h = vec4<f16>(p${name}${i}); ${range(4).map((t) => `${cell(name, t)} = h[${t}];`).join(' ')} }`;
  });
  // Double buffering: each operand's tile twice in workgroup memory; rA/rB the halves multiplied
  // out of this K step, wA/wB the halves the next is stored into.
  const sizeA = blocks ? sgRows * blockA : aRows * pa, sizeB = blocks ? sgCols * blockB : bRows * pb, rA = double ? 'rA + ' : '', rB = double ? 'rB + ' : '';
  const bytes = (double ? 4 : 2) * (sizeA + sizeB) + 4 * subgroups * cm * cn;
  if (bytes > WORKGROUP_BYTES) fail('usage', `gemm_f16: a ${bm}x${bn} tile with K step ${bk}${double ? ', double-buffered,' : ''} needs ${bytes} bytes of workgroup memory in form ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} (at most ${WORKGROUP_BYTES})`);
  // In blocks, the subgroup's block at constant offsets; else its rows or columns of the whole tile.
  const left = (i: number, s: number) => blocks
    ? mLoad(syntax, L, '&As[sr]', aK ? `${i * cm * pa + s * ck}u` : `${s * ck * pa + i * cm}u`, `${pa}u`, !aK)
    : aK
      ? mLoad(syntax, L, '&As', `${rA}(sr * ${sgm}u + ${i * cm}u) * ${pa}u + ${s * ck}u`, `${pa}u`)
      : mLoad(syntax, L, '&As', `${rA}${s * ck * pa}u + sr * ${sgm}u + ${i * cm}u`, `${pa}u`, true);
  const right = (j: number, s: number) => blocks
    ? mLoad(syntax, R, '&Bs[sc]', bN ? `${s * ck * pb + j * cn}u` : `${j * cn * pb + s * ck}u`, `${pb}u`, !bN)
    : bN
      ? mLoad(syntax, R, '&Bs', `${rB}${s * ck * pb}u + sc * ${sgn}u + ${j * cn}u`, `${pb}u`)
      : mLoad(syntax, R, '&Bs', `${rB}(sc * ${sgn}u + ${j * cn}u) * ${pb}u + ${s * ck}u`, `${pb}u`, true);
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const cOff = (i: number, j: number) => `offC + (row0 + sr * ${sgm}u + ${i * cm}u) * u.ldc + col0 + sc * ${sgn}u + ${j * cn}u`;
  return {
    name: 'gemm_f16_sgmatrix_vec',
    cacheKey: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'};acc=${accumulate ? 1 : 0};cfg=${cm}x${cn}x${ck};${syntax}${bz.key}${opts.variant ? `;tile=${sgRows}x${sgCols}x${sgm}x${sgn}x${bk}${double ? 'db' : ''}${blocks ? 'bl' : ''}${probe ? `;probe=${probe}` : ''}` : ''}`,
    workgroupSize: [wg],
    dispatch: [Math.ceil(args.n / bn), Math.ceil(args.m / bm), bz.z],
    uniforms: gemmUniforms(args, split, slice),
    bindings: [{ name: 'A', access: 'read', type: 'vec4<f32>' }, { name: 'B', access: 'read', type: 'vec4<f32>' }, { name: 'C', access: 'read_write', type: 'f32' }],
    extensions: ['f16', 'chromium_experimental_subgroup_matrix'],
    // Matrix offsets derive from lidx / 32 (uniform within each subgroup of 32 consecutive lanes,
    // NVIDIA's), and the direct-store branch from the workgroup id and uniforms.
    diagnosticsOff: ['chromium.subgroup_matrix_uniformity'],
    source: () => {
      const steps = probe === 'stage' ? '' : mmaSteps(bk, ck, mt, nt, left, right);
      const slow = cellEpilogue(syntax, accumulate, opts.config, sgm, sgn, mt, nt);
      return {
        decls: `
var<workgroup> As: ${blocks ? `array<array<f16, ${blockA}>, ${sgRows}>` : `array<f16, ${(double ? 2 : 1) * sizeA}>`}; // A's tile as stored: ${aK ? '[m][k]' : '[k][m]'}${double ? ', twice' : ''}${blocks ? ', one block per subgroup row' : ''}
var<workgroup> Bs: ${blocks ? `array<array<f16, ${blockB}>, ${sgCols}>` : `array<f16, ${(double ? 2 : 1) * sizeB}>`}; // B's tile as stored: ${bN ? '[k][n]' : '[n][k]'}${double ? ', twice' : ''}${blocks ? ', one block per subgroup column' : ''}
var<workgroup> Cs: array<f32, ${subgroups * cm * cn}>; // one result matrix per subgroup (edge epilogue)`,
        main: `
  let sg = lidx / 32u; let lane = lidx % 32u; let sr = sg / ${sgCols}u; let sc = sg % ${sgCols}u;${HEAD(bm, bn, false, args.batch)}
  let interior = row0 + ${bm}u <= u.M && col0 + ${bn}u <= u.N && u.alpha == 1.0;
  ${range(mt).flatMap((i) => range(nt).map((j) => `var ${acc(i, j)} = ${Res}();`)).join(' ')}
  ${accumulate ? `if (interior) {
    ${range(mt).flatMap((i) => range(nt).map((j) => `${acc(i, j)} = ${mLoad(syntax, Res, '&C', cOff(i, j), 'u.ldc')};`)).join('\n    ')}
  }` : ''}
  ${range(Math.max(perA, perB)).map((i) => [i < perA ? `var pA${i} = vec4<f32>(0.0);` : '', i < perB ? `var pB${i} = vec4<f32>(0.0);` : ''].filter(Boolean).join(' ')).join(' ')}
  if (kBegin < kEnd) { let k0 = kBegin;
      ${loads('k0')} }${double ? `
  { let wA = 0u; let wB = 0u;
    ${stores} }
  workgroupBarrier();
  var cur = 0u;
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    let kn = k0 + ${bk}u;
    if (kn < kEnd) {
      ${loads('kn')} }
    let rA = cur * ${sizeA}u; let rB = cur * ${sizeB}u;${steps}
    if (kn < kEnd) { let wA = ${sizeA}u - rA; let wB = ${sizeB}u - rB;
      ${stores} }
    workgroupBarrier();
    cur = 1u - cur;
  }` : `
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stores}
    workgroupBarrier();
    let kn = k0 + ${bk}u;
    if (kn < kEnd) {
      ${loads('kn')} }${steps}
    workgroupBarrier();
  }`}
  if (interior) {
    ${range(mt).flatMap((i) => range(nt).map((j) => `${mStore(syntax, '&C', cOff(i, j), acc(i, j), 'u.ldc')};`)).join('\n    ')}
  } else {${slow}
  }`,
      };
    },
  };
}

/** Validate and record an f16-operand, f32-accumulate GEMM on subgroup matrices (see header). */
export function gemmF16(ctx: GpuContext, args: MatmulArgs, opts: F16Options): void {
  if (!ctx.device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName) || !ctx.device.features.has('shader-f16'))
    fail('usage', "gemm_f16: the device lacks 'chromium-experimental-subgroup-matrix' or 'shader-f16' (dawn.node: create it with DAWN_F16_MATRIX_TOGGLES and request both features)");
  checkMatmulArgs('gemm_f16', args, opts.halfOperands ? 2 : 4);
  if (args.m === 0 || args.n === 0) return;
  const { kernel, small, split, variant } = f16Plan(args, opts);
  const o = variant ? { ...opts, variant } : opts;
  if (kernel === 'vec') runGemm(ctx, args, split, (a, s) => gemmF16VecProgram(a, s, o));
  else runGemm(ctx, args, split, (a, s) => gemmF16Program(a, s, opts, small));
}
