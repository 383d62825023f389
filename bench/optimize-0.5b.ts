/**
 * Acceptance 3 of issue 2: `ortfuse optimize` on the Qwen2-0.5B-shaped training graph (about 2 GB
 * of external weights) must finish in under 10 s and under 1 GB of memory beyond the weights.
 *
 *   npx tsx bench/optimize-0.5b.ts [--runs N]
 *
 * Generates models/generated/qwen2-0.5b.onnx (+ .data) if absent, then measures, each in a fresh
 * child process under /usr/bin/time -v (wall time, peak RSS):
 *   - cli:     node dist/src/cli/main.js optimize in -o out   (after `npm run build`, when it builds)
 *   - library: loadFile -> runPipeline(defaultPipeline()) -> checker -> saveFile, via tsx
 * and writes bench/results/optimize-0.5b.json and .md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const genDir = path.join(root, 'models/generated');
const input = path.join(genDir, 'qwen2-0.5b.onnx');
const output = path.join(genDir, 'qwen2-0.5b.opt.onnx');
const resultsDir = path.join(root, 'bench/results');
const TARGET_S = 10;
const TARGET_MB = 1024;

interface Measure {
  path: 'cli' | 'library';
  command: string;
  wallS: number;
  peakRssMB: number;
  inner?: Record<string, unknown>;
}

/** Child mode: the library path, reporting its own phases. */
async function child(inp: string, out: string): Promise<void> {
  const t0 = performance.now();
  const { loadFile, saveFile } = await import('../src/onnx/io.js');
  const { runPipeline, defaultPipeline } = await import('../src/pipeline.js');
  const { check } = await import('../src/ir/checker.js');
  const tImport = performance.now();
  const model = loadFile(inp);
  const tLoad = performance.now();
  const report = runPipeline(model, defaultPipeline());
  check(model, 'optimized model');
  const tPasses = performance.now();
  saveFile(model, out, { location: `${path.basename(out)}.data` });
  const tSave = performance.now();
  const ms = (a: number, b: number) => Math.round(b - a);
  process.stdout.write(`${JSON.stringify({
    importMs: ms(t0, tImport), loadMs: ms(tImport, tLoad), passesMs: ms(tLoad, tPasses), saveMs: ms(tPasses, tSave),
    passes: report.passes.map((p) => ({ name: p.name, ms: Math.round(p.ms), counts: p.counts })),
    nodes: model.graph.nodes.length, maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  })}\n`);
}

/** Run `cmd args` under /usr/bin/time -v; wall time and peak RSS of the child. */
function timed(kind: Measure['path'], cmd: string, args: string[]): Measure {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const wallS = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${kind} run failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let inner: Record<string, unknown> | undefined;
  try {
    inner = JSON.parse(last);
  } catch {
    inner = undefined;
  }
  return { path: kind, command: [cmd, ...args].map((a) => path.relative(root, a) || a).join(' '), wallS, peakRssMB: rss ? Number(rss[1]) / 1024 : NaN, inner };
}

function ensureModel(): { generatedNow: boolean; genS?: number } {
  if (fs.existsSync(input) && fs.existsSync(`${input}.data`)) return { generatedNow: false };
  const t0 = performance.now();
  execFileSync(process.execPath, ['--import', 'tsx', path.join(root, 'models/generate.ts'), '--config', '0.5b', '--out', input], { cwd: root, stdio: 'inherit' });
  return { generatedNow: true, genS: (performance.now() - t0) / 1000 };
}

function tryBuild(): boolean {
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) console.warn(`npm run build failed; measuring the library path only\n${(r.stdout + r.stderr).slice(0, 2000)}`);
  return r.status === 0 && fs.existsSync(path.join(root, 'dist/src/cli/main.js'));
}

async function main(): Promise<void> {
  const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 2;
  const gen = ensureModel();
  const dataBytes = fs.statSync(`${input}.data`).size;
  const measures: Measure[] = [];
  const cli = tryBuild();
  const self = fileURLToPath(import.meta.url);
  const cliJson = path.join(os.tmpdir(), `ortfuse-opt-0.5b-${process.pid}.json`);
  for (let i = 0; i < runs; i++) {
    if (cli) {
      const m = timed('cli', process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'optimize', input, '-o', output, '--json', cliJson]);
      const report = JSON.parse(fs.readFileSync(cliJson, 'utf8'));
      m.inner = { ...report.ms, passes: report.passes?.map((p: { name: string; ms: number }) => `${p.name} ${Math.round(p.ms)}`) };
      measures.push(m);
    }
    measures.push(timed('library', process.execPath, ['--import', 'tsx', self, '--child', input, output]));
  }
  fs.rmSync(cliJson, { force: true });
  // Headline: the median run (saving 2 GB is at the mercy of the page cache's writeback).
  const median = (p: Measure['path']) => {
    const ms = measures.filter((m) => m.path === p).sort((a, b) => a.wallS - b.wallS);
    return ms[(ms.length - 1) >> 1];
  };
  const headline = median(cli ? 'cli' : 'library')!;
  const worst = measures.reduce((a, m) => (m.wallS > a.wallS ? m : a));
  const worstRss = Math.max(...measures.map((m) => m.peakRssMB));
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    commit: spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim(),
    pipeline: (measures.find((m) => m.path === 'library')?.inner?.passes as { name: string }[] | undefined)?.map((p) => p.name),
    model: { file: path.relative(root, input), weightsBytes: dataBytes, nodes: measures.find((m) => m.path === 'library')?.inner?.nodes, generatedNow: gen.generatedNow, generateS: gen.genS && +gen.genS.toFixed(1) },
    target: { wallS: TARGET_S, peakRssMB: TARGET_MB },
    headline: { path: headline.path, statistic: 'median', wallS: +headline.wallS.toFixed(2), peakRssMB: Math.round(headline.peakRssMB) },
    worst: { wallS: +worst.wallS.toFixed(2), peakRssMB: Math.round(worstRss) },
    pass: worst.wallS < TARGET_S && worstRss < TARGET_MB,
    runs: measures.map((m) => ({ ...m, wallS: +m.wallS.toFixed(2), peakRssMB: Math.round(m.peakRssMB) })),
  };
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, 'optimize-0.5b.json'), `${JSON.stringify(result, null, 2)}\n`);
  const phases = (m: Measure) => {
    const i = m.inner ?? {};
    const ms = (k: string) => (typeof i[k] === 'number' ? Math.round(i[k] as number) : '-');
    return m.path === 'cli' ? `load ${ms('load')}, passes+check ${Math.round(Number(i.total) - Number(i.load) - Number(i.save))}, save ${ms('save')}` : `load ${ms('loadMs')}, passes+check ${ms('passesMs')}, save ${ms('saveMs')}`;
  };
  const rows = measures.map((m) => `| ${m.path} | ${m.wallS.toFixed(2)} | ${Math.round(m.peakRssMB)} | ${phases(m)} |`);
  fs.writeFileSync(path.join(resultsDir, 'optimize-0.5b.md'), [
    '# optimize on the Qwen2-0.5B-shaped training graph',
    '',
    `Model: \`${result.model.file}\` (${result.model.nodes} nodes) built by models/generate.ts (seed 0), ${(dataBytes / 2 ** 30).toFixed(2)} GiB of fp32 external weights${gen.genS ? `, generated in ${gen.genS.toFixed(1)} s` : ''}.`,
    `Pipeline at commit ${result.commit}: ${result.pipeline?.join(' → ') ?? '?'}.`,
    `Machine: ${result.machine.cpus} cores (${result.machine.cpu}), ${result.machine.memGiB} GiB, Node ${result.machine.node}. Each run is a fresh process under /usr/bin/time -v; the page cache was warm.`,
    `Target (issue 2, acceptance 3): under ${TARGET_S} s and under ${TARGET_MB} MB peak RSS. Result: **${result.pass ? 'met' : 'NOT met'}** by every run — median ${headline.path} run ${result.headline.wallS} s, ${result.headline.peakRssMB} MB peak RSS; worst run ${result.worst.wallS} s, worst peak RSS ${result.worst.peakRssMB} MB. Nearly all the time is the streamed copy of the 1.84 GiB of weights into the output's external data file.`,
    '',
    '| path | wall s | peak RSS MB | phases (ms) |',
    '|---|---|---|---|',
    ...rows,
    '',
    'Reproduce: `npx tsx bench/optimize-0.5b.ts` (writes this file and optimize-0.5b.json).',
    '',
  ].join('\n'));
  console.log(JSON.stringify(result.headline), result.pass ? 'PASS' : 'FAIL');
  for (const r of rows) console.log(r);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--child');
  if (i >= 0) await child(process.argv[i + 1], process.argv[i + 2]);
  else await main();
}
