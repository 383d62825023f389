/// <reference types="@webgpu/types" />
/**
 * WGSL kernels for the standard ONNX ops between the fused ops of a training step (the residual
 * Add, the head Transposes): with them, the webgpu backend's stage plan need not hand the step back
 * to ONNX Runtime for a kernel or two between each pair of fused ops (src/runtime/webgpu/glue.ts
 * says which nodes run here). fp32, one invocation per output element, ranks up to MAX_RANK.
 *
 *   add:        out[i] = a[ia(i)] + b[ib(i)], numpy broadcasting (a dim of 1, or missing on the
 *               left, repeats): per operand a stride per output dim, 0 where it broadcasts.
 *   transpose:  out[i] = x[ix(i)], out dims = x dims permuted by `perm` (out dim j = x dim perm[j]).
 *   scatterAdd: out [V, H…] (zeros, or the data's values); out[idx_r] += updates[r] for each row r
 *               (ONNX ScatterND, reduction 'add', indices [..., 1]): rows of the same index linked
 *               first, then each output element summed by one invocation in row order, starting
 *               from its value (deterministic).
 *
 * The index maps walk the output index from the last dim: `rank` divisions per element. Shapes
 * and strides are uniforms (one pipeline per rank), so every shape shares the pipelines.
 */
import { fail } from '../errors.js';
import type { GpuContext } from './context.js';
import { dispatch1d, type Program, type Uniform } from './program.js';
import { checkBuffer, checkU32 } from './validate.js';

export const MAX_RANK = 6;
const WG = 256;

const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Row-major strides of `dims`. */
function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/** The output shape of numpy broadcasting `a` and `b`, or an error naming both. */
export function broadcastDims(kernel: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) fail('usage', `${kernel}: shapes [${a}] and [${b}] do not broadcast (dim ${i}: ${x} vs ${y})`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Strides of `dims` read as an operand of output `out` (0 where it broadcasts). */
function broadcastStrides(dims: readonly number[], out: readonly number[]): number[] {
  const own = strides(dims);
  return out.map((d, i) => {
    const j = i - (out.length - dims.length);
    return j < 0 || dims[j] === 1 ? 0 : own[j];
  });
}

/** A program over the `n` elements of an output of rank `rank`, with per-dim uniforms. */
function indexed(name: string, rank: number, n: number, uniforms: Uniform[], bindings: Program['bindings'], body: string): Program {
  return {
    name,
    cacheKey: `f32;rank=${rank}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(n / WG)),
    uniforms: [{ name: 'n', type: 'u32', value: n }, ...uniforms],
    bindings,
    source: () => ({ main: `  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;\n  if (i >= u.n) { return; }\n${body}` }),
  };
}

/** WGSL that turns the flat output index `i` into operand offsets `off_<op>` (uniforms d<k>, <op>s<k>). */
function offsets(rank: number, ops: readonly string[]): string {
  const lines = [`  var rest = i;`, ...ops.map((o) => `  var off_${o} = 0u;`)];
  for (let k = rank - 1; k >= 0; k--) {
    lines.push(`  { let c = rest % u.d${k}; rest = rest / u.d${k};${ops.map((o) => ` off_${o} += c * u.${o}s${k};`).join('')} }`);
  }
  return lines.join('\n');
}

function checkRank(kernel: string, dims: readonly number[]): void {
  if (dims.length > MAX_RANK) fail('usage', `${kernel}: rank ${dims.length} is above ${MAX_RANK}`);
  for (const d of dims) if (!Number.isInteger(d) || d < 0) fail('usage', `${kernel}: dims [${dims}] must be non-negative integers`);
}

/**
 * out = a + b with numpy broadcasting (fp32). `out` may be `a` or `b` itself when it has the output's
 * shape (in place: each element reads its own operands before writing); allocated when absent.
 * Returns out and its dims.
 */
export function addBroadcast(ctx: GpuContext, a: { buffer: GPUBuffer; dims: readonly number[] }, b: { buffer: GPUBuffer; dims: readonly number[] }, out?: GPUBuffer): { buffer: GPUBuffer; dims: number[] } {
  const k = 'Add';
  checkRank(k, a.dims);
  checkRank(k, b.dims);
  const dims = broadcastDims(k, a.dims, b.dims);
  const n = count(dims);
  checkU32(k, 'out', n);
  checkBuffer(k, 'a', a.buffer, count(a.dims));
  checkBuffer(k, 'b', b.buffer, count(b.dims));
  const y = out ? checkBuffer(k, 'out', out, n) : ctx.buffer('add.out', n * 4, 'any');
  if (n === 0) return { buffer: y, dims };
  const inPlace = y === a.buffer || y === b.buffer;
  // Same shapes: no index maps.
  const flat = a.dims.length === b.dims.length && a.dims.every((d, i) => d === b.dims[i]);
  const rank = flat ? 1 : dims.length;
  const sa = flat ? [1] : broadcastStrides(a.dims, dims), sb = flat ? [1] : broadcastStrides(b.dims, dims);
  const d = flat ? [n] : dims;
  const uniforms: Uniform[] = d.flatMap((x, i) => [
    { name: `d${i}`, type: 'u32' as const, value: x },
    { name: `as${i}`, type: 'u32' as const, value: sa[i] },
    { name: `bs${i}`, type: 'u32' as const, value: sb[i] },
  ]);
  // In place, the output binding is the operand it replaces (one binding per buffer).
  const dst = y === a.buffer ? 'A' : 'B';
  const bindings: Program['bindings'] = inPlace
    ? [{ name: 'A', access: dst === 'A' ? 'read_write' : 'read', type: 'f32' }, { name: 'B', access: dst === 'B' ? 'read_write' : 'read', type: 'f32' }]
    : [{ name: 'A', access: 'read', type: 'f32' }, { name: 'B', access: 'read', type: 'f32' }, { name: 'Y', access: 'read_write', type: 'f32' }];
  const body = `${offsets(rank, ['a', 'b'])}\n  ${inPlace ? dst : 'Y'}[i] = A[off_a] + B[off_b];`;
  ctx.run(indexed(inPlace ? `add_into_${dst.toLowerCase()}` : 'add', rank, n, uniforms, bindings, body), inPlace ? [a.buffer, b.buffer] : [a.buffer, b.buffer, y]);
  return { buffer: y, dims };
}

/** A block of `rows` × `cols` 4-byte elements: row r of the source at `srcOffset + r·srcLd`, of the destination at `dstOffset + r·dstLd` (elements). */
export interface Block {
  rows: number;
  cols: number;
  srcLd: number;
  srcOffset: number;
  dstLd: number;
  dstOffset: number;
}

/**
 * dst[block] = src[block]: one column range of a row-major view into another — a Concat input into
 * its place in the output, a Split or Slice output out of its input, along any axis (rows = the
 * product of the dims before it, columns = the axis' range times the dims after it).
 */
export function copyBlock(ctx: GpuContext, src: GPUBuffer, dst: GPUBuffer, b: Block): void {
  const k = 'copyBlock';
  const n = b.rows * b.cols;
  if (![b.rows, b.cols, b.srcLd, b.srcOffset, b.dstLd, b.dstOffset].every((x) => Number.isInteger(x) && x >= 0) || b.cols > b.srcLd || b.cols > b.dstLd)
    fail('usage', `${k}: ${JSON.stringify(b)} is not a block of both views`);
  if (src === dst) fail('usage', `${k}: the source and the destination are one buffer`);
  if (n === 0) return;
  checkU32(k, 'block', n);
  checkBuffer(k, 'src', src, b.srcOffset + (b.rows - 1) * b.srcLd + b.cols);
  checkBuffer(k, 'dst', dst, b.dstOffset + (b.rows - 1) * b.dstLd + b.cols);
  const uniforms: Uniform[] = [
    { name: 'n', type: 'u32', value: n }, { name: 'cols', type: 'u32', value: b.cols },
    { name: 'srcLd', type: 'u32', value: b.srcLd }, { name: 'srcOff', type: 'u32', value: b.srcOffset },
    { name: 'dstLd', type: 'u32', value: b.dstLd }, { name: 'dstOff', type: 'u32', value: b.dstOffset },
  ];
  ctx.run({
    name: 'copy_block',
    cacheKey: 'f32',
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(n / WG)),
    uniforms,
    bindings: [{ name: 'X', access: 'read', type: 'f32' }, { name: 'Y', access: 'read_write', type: 'f32' }],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.n) { return; }
  let r = i / u.cols; let c = i % u.cols;
  Y[u.dstOff + r * u.dstLd + c] = X[u.srcOff + r * u.srcLd + c];`,
    }),
  }, [src, dst]);
}

/** Parts one dispatch of `joinBlocks` / `splitBlocks` takes (a binding each); more go in several. */
const PARTS = 4;

/**
 * The column ranges of `rows` × Σ cols side by side: dst row r = [part 0 row r | part 1 row r | …]
 * (`join`: parts → whole, a Concat), or the reverse (split: whole → parts, a Split). Each part is
 * contiguous (its row length = its cols); the whole has row length Σ cols. One dispatch per four
 * parts (a copyBlock each beyond).
 */
export function joinBlocks(ctx: GpuContext, parts: readonly { buffer: GPUBuffer; cols: number }[], whole: GPUBuffer, rows: number, join: boolean): void {
  const k = join ? 'joinBlocks' : 'splitBlocks';
  const total = parts.reduce((s, p) => s + p.cols, 0);
  for (let g = 0, at = 0; g < parts.length; g += PARTS) {
    const group = parts.slice(g, g + PARTS).filter((p) => p.cols > 0);
    const from = at;
    at += parts.slice(g, g + PARTS).reduce((s, p) => s + p.cols, 0);
    if (!group.length || rows === 0) continue;
    if (group.some((p) => p.buffer === whole)) fail('usage', `${k}: a part is the whole's buffer`);
    const n = rows * (at - from);
    checkU32(k, 'block', n);
    checkBuffer(k, 'whole', whole, rows * total);
    group.forEach((p, j) => checkBuffer(k, `part ${g + j}`, p.buffer, rows * p.cols));
    // Column ends of the parts within this group's range, relative to `from`.
    const ends: number[] = [];
    group.reduce((e, p) => (ends.push(e + p.cols), e + p.cols), 0);
    const uniforms: Uniform[] = [
      { name: 'n', type: 'u32', value: n }, { name: 'cols', type: 'u32', value: at - from },
      { name: 'ld', type: 'u32', value: total }, { name: 'off', type: 'u32', value: from },
      ...ends.map((e, j) => ({ name: `e${j}`, type: 'u32' as const, value: e })),
    ];
    const names = group.map((_, j) => `P${j}`);
    const move = (j: number) => {
      const start = j ? `u.e${j - 1}` : '0u';
      const part = `${names[j]}[r * (u.e${j} - ${start}) + c - ${start}]`, full = 'W[r * u.ld + u.off + c]';
      return join ? `${full} = ${part};` : `${part} = ${full};`;
    };
    ctx.run({
      name: join ? 'join_blocks' : 'split_blocks',
      cacheKey: `f32;parts=${group.length}`,
      workgroupSize: [WG],
      dispatch: dispatch1d(Math.ceil(n / WG)),
      uniforms,
      bindings: join
        ? [...names.map((name) => ({ name, access: 'read' as const, type: 'f32' as const })), { name: 'W', access: 'read_write', type: 'f32' }]
        : [{ name: 'W', access: 'read', type: 'f32' }, ...names.map((name) => ({ name, access: 'read_write' as const, type: 'f32' as const }))],
      source: () => ({
        main: `
  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.n) { return; }
  let r = i / u.cols; let c = i % u.cols;
  ${group.map((_, j) => `${j ? 'else ' : ''}${j < group.length - 1 ? `if (c < u.e${j}) ` : ''}{ ${move(j)} }`).join('\n  ')}`,
      }),
    }, join ? [...group.map((p) => p.buffer), whole] : [whole, ...group.map((p) => p.buffer)]);
  }
}

/** The output dims of transposing `dims` by `perm` (ONNX: default reverses), or an error. */
export function transposeDims(kernel: string, dims: readonly number[], perm: readonly number[] | undefined): { dims: number[]; perm: number[] } {
  const p = perm ?? dims.map((_, i) => dims.length - 1 - i);
  if (p.length !== dims.length || [...p].sort((x, y) => x - y).some((x, i) => x !== i))
    fail('usage', `${kernel}: perm [${p}] is not a permutation of the ${dims.length} dims of [${dims}]`);
  return { dims: p.map((j) => dims[j]), perm: [...p] };
}

/** out = transpose(x, perm) (4-byte elements); allocated when absent. Returns out and its dims. */
export function transpose(ctx: GpuContext, x: { buffer: GPUBuffer; dims: readonly number[] }, perm?: readonly number[], out?: GPUBuffer): { buffer: GPUBuffer; dims: number[] } {
  const k = 'Transpose';
  checkRank(k, x.dims);
  const t = transposeDims(k, x.dims, perm);
  const n = count(x.dims);
  checkU32(k, 'x', n);
  checkBuffer(k, 'x', x.buffer, n);
  const y = out ? checkBuffer(k, 'out', out, n) : ctx.buffer('transpose.out', n * 4, 'any');
  if (y === x.buffer) fail('usage', `${k}: the output cannot be the input's buffer`);
  if (n === 0) return { buffer: y, dims: t.dims };
  // Merge out dims whose source dims are adjacent and in order (e.g. [B,T,H,D]→[B,H,T,D] stays rank 4,
  // but a no-op tail collapses): fewer divisions per element.
  const xs = strides(x.dims);
  const merged: { d: number; s: number }[] = [];
  for (const j of t.perm) {
    const last = merged[merged.length - 1];
    if (x.dims[j] === 1) continue;
    if (last && last.s === xs[j] * x.dims[j]) { last.d *= x.dims[j]; last.s = xs[j]; } else merged.push({ d: x.dims[j], s: xs[j] });
  }
  if (!merged.length) merged.push({ d: 1, s: 1 });
  const uniforms: Uniform[] = merged.flatMap((m, i) => [
    { name: `d${i}`, type: 'u32' as const, value: m.d },
    { name: `xs${i}`, type: 'u32' as const, value: m.s },
  ]);
  const body = `${offsets(merged.length, ['x'])}\n  Y[i] = X[off_x];`;
  ctx.run(indexed('transpose', merged.length, n, uniforms, [{ name: 'X', access: 'read', type: 'f32' }, { name: 'Y', access: 'read_write', type: 'f32' }], body), [x.buffer, y]);
  return { buffer: y, dims: t.dims };
}

/**
 * WGSL `row_of(r)`: the int64 index r (two u32 words, little-endian) as a row of [0, V), or V when
 * it is outside [−V, V); a negative one counts from the end (idx + V).
 */
const ROW_OF = `
fn row_of(r: u32) -> u32 {
  let lo = Idx[2u * r]; let hi = Idx[2u * r + 1u];
  if (hi == 0u && lo < u.V) { return lo; }
  // [-V, 0): hi all ones, lo >= 2^32 - V, and lo + V wraps to the row.
  if (hi == 0xffffffffu && lo >= 0u - u.V) { return lo + u.V; }
  return u.V;
}`;

/**
 * out[idx[r], j] += updates[r, j] for r < n, j < H, in place in `out` ([V, H] fp32 holding the
 * starting values: zeros from ctx.buffer() for a scatter onto zeros, or a copy of the data, or the
 * data's own buffer) — ONNX ScatterND with reduction 'add', indices of shape [..., 1]. Rows no
 * index names keep their values. `indices` holds n int64 values; one in [−V, 0) counts from the
 * end (idx + V), one outside [−V, V) is skipped (its row adds nothing).
 *
 * Deterministic, no atomics: a first pass links each update row to the next row with the same
 * index and marks the first of each (O(n²) index compares, one invocation per row: 17M for the
 * 4096 tokens of an 8×512 batch); then, per column, the first row of each index reads the output
 * element, adds its chain in row order and writes it back, and nothing else touches that element —
 * the same sums, bit for bit, as a sequential scatter from the starting values (ORT's CPU kernel),
 * and the same every run.
 */
export function scatterAdd(ctx: GpuContext, indices: GPUBuffer, updates: GPUBuffer, out: GPUBuffer, a: { n: number; v: number; h: number }): void {
  const k = 'ScatterND';
  for (const [what, d] of Object.entries(a)) if (!Number.isInteger(d) || d < 0) fail('usage', `${k}: ${what}=${d} must be a non-negative integer`);
  if (a.v >= 2 ** 31) fail('usage', `${k}: V=${a.v} rows are more than an i32 index reaches`);
  checkU32(k, 'updates', a.n * a.h);
  checkU32(k, 'out', a.v * a.h);
  checkBuffer(k, 'indices', indices, 2 * a.n);
  checkBuffer(k, 'updates', updates, a.n * a.h);
  checkBuffer(k, 'out', out, a.v * a.h);
  if (a.n * a.h === 0 || a.v === 0) return; // no row in range: nothing to add
  const uniforms: Uniform[] = [
    { name: 'n', type: 'u32', value: a.n },
    { name: 'H', type: 'u32', value: a.h },
    { name: 'V', type: 'u32', value: a.v },
  ];
  // links[2r] = the next row with r's index (n: none), links[2r + 1] = 1 when r is its index's first row.
  const links = ctx.temp('scatterAdd.links', 2 * a.n * 4, 'any');
  ctx.run({
    name: 'scatter_add_links', cacheKey: 'i64', workgroupSize: [WG], dispatch: dispatch1d(Math.ceil(a.n / WG)), uniforms,
    bindings: [{ name: 'Idx', access: 'read', type: 'u32' }, { name: 'L', access: 'read_write', type: 'u32' }],
    source: () => ({
      decls: ROW_OF,
      main: `  let r = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (r >= u.n) { return; }
  let x = row_of(r);
  var first = select(1u, 0u, x == u.V);
  for (var s = 0u; s < r && first == 1u; s++) { if (row_of(s) == x) { first = 0u; } }
  var next = u.n;
  for (var s = r + 1u; s < u.n && x != u.V; s++) { if (row_of(s) == x) { next = s; break; } }
  L[2u * r] = next;
  L[2u * r + 1u] = first;`,
    }),
  }, [indices, links]);
  ctx.run({
    name: 'scatter_add', cacheKey: 'f32;i64', workgroupSize: [WG], dispatch: dispatch1d(Math.ceil((a.n * a.h) / WG)), uniforms,
    bindings: [
      { name: 'Idx', access: 'read', type: 'u32' },
      { name: 'L', access: 'read', type: 'u32' },
      { name: 'U', access: 'read', type: 'f32' },
      { name: 'Y', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: ROW_OF,
      main: `  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.n * u.H) { return; }
  let r = i / u.H; let j = i % u.H;
  if (L[2u * r + 1u] == 0u) { return; }
  let o = row_of(r) * u.H + j;
  var acc = Y[o];
  for (var s = r; s < u.n; s = L[2u * s]) { acc += U[s * u.H + j]; }
  Y[o] = acc;`,
    }),
  }, [indices, links, updates, out]);
}

/**
 * out [indices dims…, H…] = rows of data [V, H…] picked by int64 `indices` (ONNX Gather, axis 0):
 * an index −V ≤ k < 0 counts from the end; one outside [−V, V) gives a row of zeros (ORT fails
 * the run there; a kernel cannot, and a zero row is what the embedding of a padded id should
 * give). Int64 is read as its two 32-bit words (little-endian). Allocated; returns out and its dims.
 */
export function gatherRows(ctx: GpuContext, data: { buffer: GPUBuffer; dims: readonly number[] }, indices: { buffer: GPUBuffer; dims: readonly number[] }): { buffer: GPUBuffer; dims: number[] } {
  const k = 'Gather';
  if (!data.dims.length) fail('usage', `${k}: data must have a row axis (got a scalar)`);
  const [v, ...row] = data.dims;
  const h = count(row), rows = count(indices.dims), n = rows * h;
  const dims = [...indices.dims, ...row];
  checkU32(k, 'out', n);
  checkU32(k, 'data', v * h);
  checkBuffer(k, 'data', data.buffer, v * h);
  checkBuffer(k, 'indices', indices.buffer, 2 * rows);
  const y = ctx.buffer('gather.out', n * 4, 'any');
  if (n === 0) return { buffer: y, dims };
  const uniforms: Uniform[] = [{ name: 'n', type: 'u32', value: n }, { name: 'H', type: 'u32', value: h }, { name: 'V', type: 'u32', value: v }];
  ctx.run({
    name: 'gather_rows', cacheKey: 'f32;i64', workgroupSize: [WG], dispatch: dispatch1d(Math.ceil(n / WG)), uniforms,
    bindings: [{ name: 'X', access: 'read', type: 'f32' }, { name: 'Idx', access: 'read', type: 'u32' }, { name: 'Y', access: 'read_write', type: 'f32' }],
    source: () => ({
      decls: ROW_OF,
      main: `  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.n) { return; }
  let row = row_of(i / u.H);
  if (row < u.V) { Y[i] = X[row * u.H + i % u.H]; } else { Y[i] = 0.0; }`,
    }),
  }, [data.buffer, indices.buffer, y]);
  return { buffer: y, dims };
}
