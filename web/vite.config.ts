/**
 * The training page: `npx vite build --config web/vite.config.ts` → web/dist (or `vite` for dev).
 * A plugin writes the built-in tiny model and the default text at build start (web/prepare.ts, in
 * Node) and emits them as static files; the server needs COOP/COEP (ORT-web's SharedArrayBuffer).
 * Environment: ORTFUSE_WEB_SEED (the built-in model's seed, 1), ORTFUSE_WEB_CHARS (100000).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const FILES = ['tiny.onnx', 'text.txt'];

/** Run web/prepare.ts once per build and serve/emit its outputs under /data/. */
function trainingAssets(): Plugin {
  let dir = '';
  return {
    name: 'ortfuse-training-assets',
    buildStart() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-web-'));
      const seed = process.env.ORTFUSE_WEB_SEED ?? '1', chars = process.env.ORTFUSE_WEB_CHARS ?? '100000';
      execFileSync(process.execPath, ['--import', 'tsx', path.join(here, 'prepare.ts'), dir, seed, chars], { cwd: path.join(here, '..'), stdio: 'inherit' });
      if (this.meta.watchMode) return;
      for (const f of FILES) this.emitFile({ type: 'asset', fileName: `data/${f}`, source: fs.readFileSync(path.join(dir, f)) });
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const m = req.url?.match(/^\/data\/([\w.]+)$/);
        if (!m || !FILES.includes(m[1]) || !dir) return next();
        res.end(fs.readFileSync(path.join(dir, m[1])));
      });
    },
  };
}

const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: here,
  base: './',
  plugins: [trainingAssets()],
  build: {
    // 6 MB: the Qwen2 tokenizer chunk (its vocabulary, ~5.3 MB) loads only for Qwen-vocabulary models.
    outDir: path.join(here, 'dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 6144,
    // The Node-only runtimes that the training API imports lazily for backend 'cpu' and Dawn: never loaded by the page.
    rollupOptions: {
      external: ['onnxruntime-node', 'webgpu'],
      // src/ modules that also serve Node import node:fs/path/os/v8 for their file and Dawn paths, which the page never calls: stubs, as expected.
      onLog(level, log, handler) {
        if (/Module "node:\w+" has been externalized for browser compatibility, imported by "[^"]*\/src\//.test(log.message)) return;
        handler(level, log);
      },
    },
  },
  // The project and its node_modules wherever it really lies (a symlinked node_modules: ORT-web's wasm is served from there).
  server: { headers: isolation, fs: { allow: [path.join(here, '..'), fs.realpathSync(path.join(here, '../node_modules'))] } },
  preview: { headers: isolation },
});
