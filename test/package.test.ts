/**
 * The package as a user gets it: `npm pack` (which builds dist/ through the prepare script), then a
 * fresh project in a temporary directory installs the tarball and trains the built-in tiny Qwen2
 * through the library API from a plain .mjs script.
 *
 * How, by hand (the same commands this test runs):
 *   npm pack --pack-destination /tmp/p
 *   mkdir /tmp/p/app && cd /tmp/p/app && echo '{"type":"module","private":true}' > package.json
 *   ONNXRUNTIME_NODE_INSTALL=skip npm install /tmp/p/ortfuse-<version>.tgz onnxruntime-node@<version> --prefer-offline
 *   node train.mjs   # README's "Training from code" example
 * --prefer-offline takes packages from npm's cache (filled by the repo's own `npm ci`) and asks the
 * registry only for what is missing; ONNXRUNTIME_NODE_INSTALL=skip stops onnxruntime-node's
 * postinstall from downloading CUDA binaries (npm 11 does not run dependencies' install scripts
 * without approval anyway; npm 10 does). The peers are optional: a project without
 * onnxruntime-node gets one line naming the package to install, from the API and from `train` (the
 * CLI's other commands run without it); with
 * onnxruntime-web and webgpu added, the webgpu backend trains from the tarball too.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gpuEnv } from './webgpu-helpers.js';

const root = path.resolve(import.meta.dirname, '..');
const ortVersion = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version as string;
// Nested npm calls must not inherit the npm_* settings of an `npm test` around vitest.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
env.ONNXRUNTIME_NODE_INSTALL = 'skip';

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(cmd: string, args: string[], cwd: string): string {
  const r = run(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

function project(dir: string, deps: string[]): void {
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: path.basename(dir), private: true, type: 'module' }));
  ok('npm', ['install', ...deps, '--prefer-offline', '--no-audit', '--no-fund'], dir);
}

/** The README's "Training from code" example, as a user copies it. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const m = readme.slice(readme.indexOf('## Training from code')).match(/```js\n([\s\S]*?)```/);
  if (!m) throw new Error("README.md has no ```js block under '## Training from code'");
  return m[1];
}

const WEBGPU = `import { createTrainer, demoModel } from 'ortfuse';
try { await createTrainer(demoModel(), { backend: 'webgpu' }); } catch (e) { console.log(e.code + ': ' + e.message); }
`;

const WEBGPU_TRAIN = `import { createTrainer, demoModel, mobyDick, textBatches } from 'ortfuse';
const t = await createTrainer(demoModel(), { backend: 'webgpu', batch: 2, seq: 32, lr: 3e-3, steps: 2 });
const d = await textBatches(mobyDick().slice(0, 100000), { tokenizer: 'bytes', batch: 2, seq: 32, vocab: t.vocab });
for (let i = 0; i < 2; i++) console.log((await t.step(d.train.next().value)).loss);
await t.dispose();
`;

const gpu = await gpuEnv();

describe('the packed package in a fresh project', () => {
  let dir = '';
  let pack: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-pack-'));
    [pack] = JSON.parse(ok('npm', ['pack', '--json', '--pack-destination', dir], root));
    project(path.join(dir, 'app'), [path.join(dir, pack.filename), `onnxruntime-node@${ortVersion}`]);
  }, 300_000);

  it('ships dist/ (no tests, test helpers, bench, fixtures or page sources), README and LICENSE', () => {
    const files = pack.files.map((f) => f.path);
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('LICENSE');
    expect(files.filter((f) => /\.test\.|testing\.|test-helpers|^bench\/|^dist\/bench\/|^test\/|fixtures|^web\/|\.onnx$/.test(f))).toEqual([]);
    expect(files.every((f) => f.startsWith('dist/') || ['README.md', 'LICENSE', 'package.json'].includes(f))).toBe(true);
    expect(pack.size).toBeLessThan(1_000_000);
  });

  it("runs README's training example (tiny Qwen2 through the library API, a plain .mjs script): the loss falls, the checkpoint is written", () => {
    const app = path.join(dir, 'app');
    fs.writeFileSync(path.join(app, 'train.mjs'), readmeExample());
    const out = ok('node', ['train.mjs'], app);
    const val = (w: string) => Number(out.match(new RegExp(`validation ${w} ([\\d.]+)`))![1]);
    const losses = [...out.matchAll(/^step \d+ loss ([\d.]+)/gm)].map((m) => Number(m[1]));
    expect(losses.length).toBe(20);
    expect(val('before')).toBeGreaterThan(5.5);
    expect(val('after')).toBeLessThan(val('before') - 1.5);
    expect(losses[19]).toBeLessThan(losses[0] - 1.5);
    expect(fs.statSync(path.join(app, 'run.ckpt')).size).toBeGreaterThan(1_000_000);
  });

  it("runs the CLI from the tarball; a backend whose peers are missing is one line naming them", () => {
    const app = path.join(dir, 'app');
    const bin = path.join(app, 'node_modules/.bin/ortfuse');
    expect(ok(bin, ['--version'], app).trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(ok(bin, ['train', '--steps', '3', '--no-progress'], app)).toMatch(/step 3 loss/);
    fs.writeFileSync(path.join(app, 'webgpu.mjs'), WEBGPU);
    expect(ok('node', ['webgpu.mjs'], app).trim()).toBe("usage: backend 'webgpu' needs the package webgpu, which is not installed: npm install onnxruntime-web webgpu");
  });

  it.skipIf(!gpu.ctx)('with onnxruntime-web and webgpu installed, the webgpu backend trains from the tarball', () => {
    const app = path.join(dir, 'app');
    const web = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/onnxruntime-web/package.json'), 'utf8')).version;
    const dawn = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/webgpu/package.json'), 'utf8')).version;
    ok('npm', ['install', `onnxruntime-web@${web}`, `webgpu@${dawn}`, '--prefer-offline', '--no-audit', '--no-fund'], app);
    fs.writeFileSync(path.join(app, 'webgpu-train.mjs'), WEBGPU_TRAIN);
    const losses = ok('node', ['webgpu-train.mjs'], app).trim().split('\n').map(Number);
    expect(losses.length).toBe(2);
    expect(losses[0]).toBeGreaterThan(5.5);
    expect(losses[1]).toBeLessThan(losses[0]);
  }, 300_000);

  it('without onnxruntime-node: the API and the CLI say to install it', () => {
    const bare = path.join(dir, 'bare');
    project(bare, [path.join(dir, pack.filename)]);
    fs.writeFileSync(path.join(bare, 'cpu.mjs'), WEBGPU.replace("{ backend: 'webgpu' }", '{}'));
    expect(ok('node', ['cpu.mjs'], bare).trim()).toBe("usage: backend 'cpu' needs the package onnxruntime-node, which is not installed: npm install onnxruntime-node");
    // The CLI itself runs (optimize and inspect need no runtime); cpu training stops before any work.
    const bin = path.join(bare, 'node_modules/.bin/ortfuse');
    expect(ok(bin, ['--version'], bare).trim()).toMatch(/^\d+\.\d+\.\d+/);
    const cli = run(bin, ['train', '--steps', '1', '--json', 'run.json'], bare);
    expect(cli.code).toBe(2);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toBe("ortfuse: error: backend 'cpu' needs the package onnxruntime-node, which is not installed: npm install onnxruntime-node\n");
    expect(fs.existsSync(path.join(bare, 'run.json'))).toBe(false);
  }, 120_000);
});
