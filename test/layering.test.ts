/**
 * The layering, checked on the import statements of every .ts file under src/, passes/ and
 * custom-ops/ (tests excluded: a *.test.ts file composes whatever it tests). Layers, bottom up:
 *
 *   src/errors, src/onnx, src/ir        the IR: knows no op, no backend, no CLI
 *   src/rewrite                         the rewrite engine: knows no pass
 *   src/fused                           the fused-op contract (schema, portable body, attaching bodies)
 *   src/autodiff                        autodiff: knows no runtime, receives the fused ops' rules
 *   src/webgpu                          the WebGPU device, programs and shared kernels
 *   src/ops                             the fused-op record type (what each layer needs of an op)
 *   custom-ops/<op>/ + registry.ts      the ops, one folder each, listed once
 *   passes/                             one rewrite per file
 *   src/pipeline.ts, src/index.ts,      the top: they hand the op list (custom-ops/registry.ts)
 *   src/runtime, src/cli, …             to the layers below
 *
 * Nothing under src/ imports a particular op (custom-ops/<op>/…), and no two units (a folder of
 * src/, a file at src/'s root, passes/, custom-ops/) import each other, directly or around a cycle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const SCANNED = ['src', 'passes', 'custom-ops'];

/** A relative import: from file `from` (repo path) to file `to` (repo path, .ts). */
export interface Import {
  from: string;
  to: string;
  line: number;
}

/**
 * Test support beside the code it tests: it composes like a test (runs ORT on saved bytes,
 * attaches every op's body) and is checked as tests are, not as a layer.
 */
const TEST_SUPPORT = /(^|\/)(test-helpers|testing|grad-testing|fusion-testing)\.ts$/;

/** Every .ts file under `dir` (repo-relative paths), tests and test support excluded. */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, d), { withFileTypes: true })) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') && !TEST_SUPPORT.test(p)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Relative imports of `text` (a file at repo path `file`): static, re-exports, side-effect and dynamic. */
export function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2];
    const to = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ from: file, to, line: text.slice(0, m.index + m[0].search(/\S/)).split('\n').length });
  }
  return out;
}

/**
 * The unit a repo path belongs to: `src/<folder>`, a file at src/'s root, or a top-level folder.
 * src/onnx's files are units of their own: schema.ts (data types) sits below the IR, io.ts
 * (load/save through the IR) above it.
 */
export function unitOf(p: string): string {
  const parts = p.split('/');
  if (parts[0] === 'src') return parts.length > 2 && parts[1] !== 'onnx' ? `src/${parts[1]}` : p;
  return parts[0];
}

/** A rule: imports from files matching `from` must not reach paths matching `to`. */
interface Rule {
  why: string;
  from: RegExp;
  to: RegExp;
}

const RULES: Rule[] = [
  { why: 'src/ir knows no op, no backend, no CLI, no pass', from: /^src\/ir\//, to: /^(custom-ops|passes)\/|^src\/(runtime|cli|webgpu|autodiff|rewrite|fused|ops|pipeline\.ts|index\.ts)/ },
  { why: 'src/rewrite knows no pass and no op', from: /^src\/rewrite\//, to: /^(custom-ops|passes)\/|^src\/(runtime|cli|autodiff|pipeline\.ts|index\.ts)/ },
  { why: 'src/autodiff knows no runtime, no CLI, no pass and no op (it receives the ops)', from: /^src\/autodiff\//, to: /^(custom-ops|passes)\/|^src\/(runtime|cli|webgpu|pipeline\.ts|index\.ts)/ },
  { why: 'src/fused (the fused-op contract) knows only the IR', from: /^src\/fused\//, to: /^(custom-ops|passes)\/|^src\/(runtime|cli|webgpu|autodiff|rewrite|ops|pipeline\.ts|index\.ts)/ },
  { why: 'nothing under src/ imports a particular op (src/ receives the list: custom-ops/registry.ts)', from: /^src\//, to: /^custom-ops\/[^/]+\// },
  { why: 'the ops know no runtime, CLI or pass', from: /^custom-ops\//, to: /^passes\/|^src\/(runtime|cli|pipeline\.ts|index\.ts)/ },
  { why: 'passes know no runtime or CLI', from: /^passes\//, to: /^src\/(runtime|cli|pipeline\.ts|index\.ts)/ },
];

/**
 * Imports that still run against a rule, each with the reason it stays (file -> imported path).
 * Empty: keep it so; an entry here is a debt to pay, not a way to silence the test.
 */
const ALLOWED: ReadonlySet<string> = new Set<string>([]);

/** Rule violations among `imports`, as 'from:line -> to (why)'. */
export function violations(imports: Import[], allowed: ReadonlySet<string> = ALLOWED): string[] {
  const out: string[] = [];
  for (const i of imports)
    for (const r of RULES)
      if (r.from.test(i.from) && r.to.test(i.to) && !allowed.has(`${i.from} -> ${i.to}`)) out.push(`${i.from}:${i.line} -> ${i.to} (${r.why})`);
  return out;
}

/** Cycles between units, each as 'a -> b -> … -> a' with one import per edge as evidence. */
export function unitCycles(imports: Import[]): string[] {
  const edges = new Map<string, Map<string, Import>>();
  for (const i of imports) {
    const [a, b] = [unitOf(i.from), unitOf(i.to)];
    if (a === b) continue;
    if (!edges.has(a)) edges.set(a, new Map());
    if (!edges.get(a)!.has(b)) edges.get(a)!.set(b, i);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (u: string) => {
    state.set(u, 'open');
    stack.push(u);
    for (const [v, ev] of edges.get(u) ?? []) {
      if (state.get(v) === 'open') {
        const loop = [...stack.slice(stack.indexOf(v)), v];
        const proof = loop.slice(0, -1).map((x, k) => { const e = edges.get(x)!.get(loop[k + 1])!; return `${e.from}:${e.line}`; });
        cycles.push(`${loop.join(' -> ')} (${proof.join(', ')})`);
      } else if (!state.has(v)) visit(v);
      void ev;
    }
    stack.pop();
    state.set(u, 'done');
  };
  for (const u of [...edges.keys()].sort()) if (!state.has(u)) visit(u);
  return cycles;
}

function allImports(): Import[] {
  return SCANNED.flatMap(sources).flatMap((f) => importsOf(f, fs.readFileSync(path.join(ROOT, f), 'utf8')));
}

describe('layering', () => {
  const imports = allImports();

  it('reads the imports of every source file', () => {
    expect(imports.length).toBeGreaterThan(300);
    for (const i of imports) expect(fs.existsSync(path.join(ROOT, i.to)), `${i.from}:${i.line} -> ${i.to}`).toBe(true);
  });

  it('no import runs against the layering', () => {
    expect(violations(imports)).toEqual([]);
  });

  it('no import cycle between units (folders of src/, passes/, custom-ops/)', () => {
    expect(unitCycles(imports)).toEqual([]);
  });

  it('every allow-list entry is still needed', () => {
    const seen = new Set(imports.map((i) => `${i.from} -> ${i.to}`));
    expect([...ALLOWED].filter((a) => !seen.has(a))).toEqual([]);
  });

  it('catches a bad import and a cycle (the check can fail)', () => {
    const bad = importsOf('src/ir/graph.ts', "import { FUSED_OPS } from '../../custom-ops/rms-norm/record.js';\nexport { x } from '../runtime/session.js';");
    expect(violations(bad).map((v) => v.split(' (')[0])).toEqual([
      'src/ir/graph.ts:1 -> custom-ops/rms-norm/record.ts',
      'src/ir/graph.ts:1 -> custom-ops/rms-norm/record.ts',
      'src/ir/graph.ts:2 -> src/runtime/session.ts',
    ]);
    const loop = [...imports, ...importsOf('src/ir/checker.ts', "import type { Pass } from '../rewrite/pass.js';")];
    expect(unitCycles(loop).some((c) => c.startsWith('src/ir -> src/rewrite -> src/ir') || c.startsWith('src/rewrite -> src/ir -> src/rewrite'))).toBe(true);
  });
});
