/**
 * The layering, checked on the import statements of every .ts file under src/, passes/ and
 * custom-ops/ (tests excluded: a *.test.ts file composes whatever it tests). Layers, bottom up:
 *
 *   src/errors, src/onnx, src/ir        the IR: knows no op, no backend, no CLI
 *   src/rewrite                         the rewrite engine: knows no pass
 *   src/fused                           the fused-op contract (schema, portable body, attaching bodies)
 *   src/autodiff                        autodiff: knows no runtime, receives the fused ops' rules
 *   src/webgpu                          the WebGPU device, programs and shared kernels: knows
 *                                       nothing of ortfuse but src/errors (no IR, no op, no runtime)
 *   src/ops                             the fused-op record type (what each layer needs of an op)
 *   custom-ops/<op>/ + registry.ts      the ops, one folder each, listed once; an op's kernels
 *                                       (<op>/webgpu/) build on src/webgpu, src/ops and the IR only
 *   passes/                             one rewrite per file
 *   src/pipeline.ts, src/index.ts,      the top: they hand the op list (custom-ops/registry.ts)
 *   src/runtime, src/cli, …             to the layers below; src/runtime/webgpu (the staged
 *                                       trainer) knows no CLI and no training API
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
  { why: 'src/webgpu (device, programs, shared kernels) knows nothing of ortfuse but src/errors', from: /^src\/webgpu\//, to: /^(custom-ops|passes)\/|^src\/(?!webgpu\/|errors\.ts$)/ },
  { why: "an op's WebGPU kernels build on src/webgpu, src/ops and the IR only", from: /^custom-ops\/[^/]+\/webgpu\//, to: /^passes\/|^src\/(?!(webgpu|ops|ir)\/|errors\.ts$|onnx\/schema\.ts$)/ },
  { why: 'the staged webgpu trainer (src/runtime/webgpu) knows no CLI and no training API', from: /^src\/runtime\/webgpu\//, to: /^src\/(cli|training)\// },
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

/**
 * The files a bundle starting at `entry` (repo path) contains: relative imports followed from file
 * to file, type-only imports left out (the compiler erases them); `dynamic: false` leaves out
 * `import()`s too (what loads with the entry, not in lazy chunks).
 */
export function bundled(entry: string, read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8'), dynamic = true): string[] {
  const seen = new Set<string>([entry]);
  for (const f of seen) {
    let code = read(f).replace(/^\s*(import|export)\s+type\s[^;]*;/gm, '');
    if (!dynamic) code = code.replace(/import\(\s*['"][^'"]+['"]\s*\)/g, '');
    for (const i of importsOf(f, code)) seen.add(i.to);
  }
  return [...seen];
}

/** Node built-ins a file imports (`node:fs`, …), statically or dynamically. */
export const nodeImports = (text: string): string[] => [...text.matchAll(/(?:from\s+|import\(\s*)['"](node:[^'"]+)['"]/g)].map((m) => m[1]);

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

  // The IR's external-data reader (src/ir/tensor.ts, node:fs) is bundled too; vite stubs it, and
  // the page never loads external data. The WebGPU code the page runs must not need Node at all,
  // except the Node entry (ORT-web on dawn.node), which the training API imports dynamically on its
  // Node path only (src/training/trainer.ts: browser.notNode()).
  it('the WebGPU code the browser page bundles imports no Node module', () => {
    const nodeOnly = ['src/runtime/webgpu/ort-web-node.ts', 'src/webgpu/dawn-node.ts'];
    const files = bundled('web/src/main.ts').filter((f) => /^src\/(runtime\/)?webgpu\/|^custom-ops\/[^/]+\/webgpu\//.test(f));
    expect(files).toContain('src/runtime/webgpu/trainer.ts');
    expect(files).toContain('custom-ops/rms-norm/webgpu/rms-norm.ts');
    const rest = files.filter((f) => !nodeOnly.includes(f));
    expect(rest.flatMap((f) => nodeImports(fs.readFileSync(path.join(ROOT, f), 'utf8')).map((m) => `${f} -> ${m}`))).toEqual([]);
    // The Node entry is reached by dynamic imports only (a lazy chunk the page never loads).
    const statically = bundled('web/src/main.ts', undefined, false);
    expect(nodeOnly.filter((f) => statically.includes(f))).toEqual([]);
    // The check can fail: a value import of the Node entry pulls node:fs in; a type-only one does not.
    const fake = (extra: string) => (f: string) => (f === 'web/src/main.ts' ? extra : fs.readFileSync(path.join(ROOT, f), 'utf8'));
    expect(bundled('web/src/main.ts', fake("import { nodeOrtWeb } from '../../src/runtime/webgpu/ort-web-node.js';"))).toContain('src/runtime/webgpu/ort-web-node.ts');
    expect(bundled('web/src/main.ts', fake("import type { OrtWeb } from '../../src/runtime/webgpu/ort-web-node.js';"))).toEqual(['web/src/main.ts']);
    expect(nodeImports("import * as fs from 'node:fs';\nconst v8 = await import('node:v8');")).toEqual(['node:fs', 'node:v8']);
  });

  // The cpu trainer (src/runtime/trainer.ts) loads onnxruntime-node: the webgpu trainer, which the
  // page loads through the browser entry, may take its types only (a value import, e.g. of a
  // helper living there, would pull onnxruntime-node into the page).
  it('the browser entry of the webgpu backend bundles no onnxruntime-node', () => {
    const entry = 'src/runtime/webgpu/browser.ts';
    const ortNode = (text: string) => /(?:from\s+|import\(\s*)['"]onnxruntime-node['"]/.test(text);
    const files = bundled(entry);
    expect(files).toContain('src/runtime/webgpu/trainer.ts');
    expect(files.filter((f) => ortNode(fs.readFileSync(path.join(ROOT, f), 'utf8')))).toEqual([]);
    const trainer = 'src/runtime/webgpu/trainer.ts';
    const fake = (f: string) => (f === trainer ? `${fs.readFileSync(path.join(ROOT, f), 'utf8')}\nimport { IGNORE_INDEX } from '../trainer.js';` : fs.readFileSync(path.join(ROOT, f), 'utf8'));
    expect(bundled(entry, fake).filter((f) => ortNode(fake(f)))).toEqual(['src/runtime/trainer.ts']);
  });

  it('catches a bad import and a cycle (the check can fail)', () => {
    const bad = importsOf('src/ir/graph.ts', "import { FUSED_OPS } from '../../custom-ops/rms-norm/record.js';\nexport { x } from '../runtime/session.js';");
    expect(violations(bad).map((v) => v.split(' (')[0])).toEqual([
      'src/ir/graph.ts:1 -> custom-ops/rms-norm/record.ts',
      'src/ir/graph.ts:1 -> custom-ops/rms-norm/record.ts',
      'src/ir/graph.ts:2 -> src/runtime/session.ts',
    ]);
    const gpu = [
      ...importsOf('src/webgpu/matmul.ts', "import type { Node } from '../ir/graph.js';\nimport { fail } from '../errors.js';"),
      ...importsOf('custom-ops/rope/webgpu/rope.ts', "import { adamw } from '../../../src/webgpu/adamw.js';\nimport { StagedSteps } from '../../../src/runtime/webgpu/steps.js';"),
      ...importsOf('src/runtime/webgpu/steps.ts', "import type { TrainOptions } from '../../training/options.js';"),
    ];
    expect(violations(gpu).map((v) => v.split(' (')[0])).toEqual([
      'src/webgpu/matmul.ts:1 -> src/ir/graph.ts',
      'custom-ops/rope/webgpu/rope.ts:2 -> src/runtime/webgpu/steps.ts',
      'custom-ops/rope/webgpu/rope.ts:2 -> src/runtime/webgpu/steps.ts',
      'src/runtime/webgpu/steps.ts:1 -> src/training/options.ts',
    ]);
    const loop = [...imports, ...importsOf('src/ir/checker.ts', "import type { Pass } from '../rewrite/pass.js';")];
    expect(unitCycles(loop).some((c) => c.startsWith('src/ir -> src/rewrite -> src/ir') || c.startsWith('src/rewrite -> src/ir -> src/rewrite'))).toBe(true);
  });
});
