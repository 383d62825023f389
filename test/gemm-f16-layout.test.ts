/**
 * gemm_f16's vec4 kernel (src/webgpu/gemm-f16.ts gemmF16VecProgram) keeps each operand's tile in
 * workgroup memory in one of two layouts: the whole tile, or one block per subgroup row / column
 * (F16Variant.blocks: constant matrix-load offsets). This machine has no subgroup matrices, so the
 * kernel cannot run here; instead this test reads the generated WGSL and follows it by hand: every
 * invocation's staging stores (where each element of the A and B tiles lands) and every subgroup's
 * matrix loads (which address each element of each left/right matrix comes from), in all four
 * layouts and both matrix spellings. Each matrix element must read exactly the tile element the
 * multiply needs, every address must lie inside its array, and no two tile elements may share one.
 */
import { describe, expect, it } from 'vitest';
import { gemmF16VecProgram } from '../src/webgpu/gemm-f16.js';
import { F16_BLOCKS, F16_DEFAULT, F16_SMALL, type F16Variant, type MatrixSyntax } from '../src/webgpu/gemm-f16-plan.js';
import { generateWgsl } from '../src/webgpu/program.js';

/** A WGSL integer expression of the kernel as a JS function of the named variables (all values ≥ 0). */
function expr(src: string, vars: string[]): (...v: number[]) => number {
  let js = src.replace(/(\d+)u\b/g, '$1');
  // Integer division: `x / n` where x is a name or a parenthesised group without nested parentheses.
  js = js.replace(/(\w+|\([^()]*\)) \/ (\d+)/g, 'Math.floor($1 / $2)');
  return new Function(...vars, `return ${js};`) as (...v: number[]) => number;
}

/** One array access `As[e]` or `As[e1][e2]`: the array's name, and [block, index] as a function of `vars` (block 0 for a flat array). */
function access(src: string, vars: string[]): { buf: string; at: (...v: number[]) => [number, number] } {
  const m = /^(As|Bs)\[(.*)\]$/.exec(src.trim());
  if (!m) throw new Error(`not an access: ${src}`);
  // "e1][e2" splits on the top-level "][" between the two indices.
  const idx = m[2].includes('][') ? m[2].split('][') : [m[2]];
  const fns = idx.map((e) => expr(e, vars));
  return { buf: m[1], at: (...v) => (fns.length === 2 ? [fns[0](...v), fns[1](...v)] : [0, fns[0](...v)]) };
}

function check(variant: F16Variant, transA: boolean, transB: boolean, syntax: MatrixSyntax): void {
  const cfg = { M: 16, N: 16, K: 16 };
  const view = { buffer: {} as GPUBuffer, ld: 1024 };
  const code = generateWgsl(gemmF16VecProgram({ m: 1024, n: 1024, k: 1024, a: view, b: view, c: view, transA, transB }, 1, { config: cfg, syntax, variant }));
  const { sgRows, sgCols, sgm, sgn, bk } = variant;
  const wg = 32 * sgRows * sgCols;
  /** Each workgroup array's [blocks, elements per block] (a flat array: one block). */
  const sizes: Record<string, [number, number]> = {};
  for (const name of ['As', 'Bs']) {
    const d = new RegExp(`var<workgroup> ${name}: (?:array<array<f16, (\\d+)>, (\\d+)>|array<f16, (\\d+)>);`).exec(code);
    expect(d, `${name} declaration`).toBeTruthy();
    sizes[name] = d![3] ? [1, Number(d![3])] : [Number(d![2]), Number(d![1])];
  }
  // Staging: the K loop's stores (the body after `for (var k0`), one block per staged vec4.
  const loop = code.slice(code.indexOf('for (var k0'));
  const owner = new Map<string, string>(); // "buf/block/idx" -> "A m,k"
  const stage = /\{ let r = ([^;]+); let c = ([^;]+); let h = vec4<f16>\(p(A|B)\d+\); ((?:[^}])*)\}/g;
  let staged = 0;
  for (const m of loop.matchAll(stage)) {
    const r = expr(m[1], ['lidx']), c = expr(m[2], ['lidx']), op = m[3] as 'A' | 'B';
    const stores = m[4].split(';').map((x) => x.trim()).filter(Boolean).map((x) => {
      const [lhs, rhs] = x.split(' = ');
      return { a: access(lhs, ['r', 'c']), t: Number(/h\[(\d)\]/.exec(rhs)![1]) };
    });
    expect(stores.length).toBe(4);
    for (let lidx = 0; lidx < wg; lidx++) {
      const R = r(lidx), C = c(lidx);
      for (const { a, t } of stores) {
        const [blk, idx] = a.at(R, C);
        const [nb, size] = sizes[a.buf];
        expect(blk < nb && idx < size, `${op} store at [${blk}][${idx}] outside ${a.buf} (${nb}×${size})`).toBe(true);
        // The tile element: A (m, k) stored [m][k] when not transposed, [k][m] when; B (k, n) [k][n] or [n][k].
        const [row, col] = [R, C + t];
        const el = op === 'A' ? (transA ? `${col},${row}` : `${row},${col}`) : (transB ? `${col},${row}` : `${row},${col}`);
        const key = `${a.buf}/${blk}/${idx}`;
        expect(owner.has(key), `${key} stored twice`).toBe(false);
        owner.set(key, `${op} ${el}`);
        staged++;
      }
    }
    if (staged >= (sgRows * sgm + sgCols * sgn) * bk) break; // the loop body's stores, not the prefetch's
  }
  expect(staged).toBe((sgRows * sgm + sgCols * sgn) * bk);
  // Matrix loads: in K sub-step order, l<i> and r<j> per sub-step.
  const load = syntax === 'template'
    ? /let (l|r)(\d+) = subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, \d+, \d+>, (row_major|col_major)>\(&(As|Bs)(\[s[rc]\])?, ([^,]+), (\d+)u\);/g
    : /let (l|r)(\d+) = subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, \d+, \d+>>\(&(As|Bs)(\[s[rc]\])?, ([^,]+), (true|false), (\d+)u\);/g;
  let s = -1, loads = 0;
  for (const m of code.matchAll(load)) {
    const [kind, which] = [m[1], Number(m[2])];
    const colMajor = syntax === 'template' ? m[3] === 'col_major' : m[6] === 'true';
    const buf = syntax === 'template' ? m[4] : m[3];
    const blockIdx = syntax === 'template' ? m[5] : m[4];
    const off = expr(syntax === 'template' ? m[6] : m[5], ['sr', 'sc']);
    const stride = Number(m[7]);
    if (kind === 'l' && which === 0) s++;
    for (let sr = 0; sr < sgRows; sr++)
      for (let sc = 0; sc < sgCols; sc++)
        for (let a = 0; a < 16; a++)
          for (let b = 0; b < 16; b++) {
            // left: rows a along M, columns b along K; right: rows a along K, columns b along N.
            const addr = off(sr, sc) + (colMajor ? b * stride + a : a * stride + b);
            const blk = blockIdx ? (blockIdx === '[sr]' ? sr : sc) : 0;
            const want = kind === 'l' ? `A ${sr * sgm + which * 16 + a},${s * 16 + b}` : `B ${s * 16 + a},${sc * sgn + which * 16 + b}`;
            expect(owner.get(`${buf}/${blk}/${addr}`), `${kind}${which} K step ${s} (sr ${sr}, sc ${sc}) element ${a},${b}`).toBe(want);
          }
    loads++;
  }
  expect(loads).toBe((bk / 16) * (sgm / 16 + sgn / 16));
}

describe("gemm_f16 vec4 kernel's workgroup layouts, followed through the generated WGSL", () => {
  for (const [name, v] of [['whole tile (F16_DEFAULT)', F16_DEFAULT], ['per-subgroup blocks (F16_BLOCKS)', F16_BLOCKS], ['blocks on the 64×64 tile', { ...F16_SMALL, blocks: true }]] as const)
    for (const syntax of ['template', 'bool'] as const)
      it(`${name}, ${syntax} spelling: every matrix element reads the tile element it multiplies, in all four forms`, () => {
        for (const transA of [false, true]) for (const transB of [false, true]) check(v, transA, transB, syntax);
      });

  it('blocks put every matrix load at a constant offset; the whole tile does not', () => {
    const view = { buffer: {} as GPUBuffer, ld: 1024 };
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        const args = { m: 1024, n: 1024, k: 1024, a: view, b: view, c: view, transA, transB };
        const offsets = (variant: F16Variant) => [...generateWgsl(gemmF16VecProgram(args, 1, { config: { M: 16, N: 16, K: 16 }, syntax: 'template', variant })).matchAll(/subgroupMatrixLoad<subgroup_matrix_(?:left|right)[^(]*\(&\w+(?:\[s[rc]\])?, ([^,]+),/g)].map((m) => m[1]);
        expect(offsets(F16_BLOCKS).every((o) => /^\d+u$/.test(o))).toBe(true);
        expect(offsets(F16_DEFAULT).some((o) => /s[rc]/.test(o))).toBe(true);
      }
  });

  it('refuses blocks double-buffered', () => {
    const view = { buffer: {} as GPUBuffer, ld: 1024 };
    expect(() => gemmF16VecProgram({ m: 256, n: 256, k: 256, a: view, b: view, c: view }, 1, { config: { M: 16, N: 16, K: 16 }, variant: { ...F16_BLOCKS, bk: 16, double: true } })).toThrow(/blocks layout is not double-buffered/);
  });
});
