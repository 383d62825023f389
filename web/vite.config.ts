/**
 * The training page: `npx vite build --config web/vite.config.ts` → web/dist (or `vite` for dev).
 * A plugin prepares the model, parameters and text at build start (web/prepare.ts, in Node) and
 * emits them as static files; the server needs COOP/COEP (ORT-web's SharedArrayBuffer).
 * Environment: ORTFUSE_WEB_SEED (model seed, 1), ORTFUSE_WEB_CHARS (100000), ORTFUSE_WEB_SHAPE (the
 * batch shape the graph is specialised to, 2x32).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const FILES = ['train.onnx', 'segments.bin', 'params.bin', 'manifest.json', 'text.txt'];

/** Run web/prepare.ts once per build and serve/emit its outputs under /data/. */
function trainingAssets(): Plugin {
  let dir = '';
  return {
    name: 'ortfuse-training-assets',
    buildStart() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-web-'));
      const seed = process.env.ORTFUSE_WEB_SEED ?? '1', chars = process.env.ORTFUSE_WEB_CHARS ?? '100000';
      const shape = process.env.ORTFUSE_WEB_SHAPE ?? '2x32';
      execFileSync(process.execPath, ['--import', 'tsx', path.join(here, 'prepare.ts'), dir, seed, chars, shape], { cwd: path.join(here, '..'), stdio: 'inherit' });
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
  build: { outDir: path.join(here, 'dist'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  server: { headers: isolation },
  preview: { headers: isolation },
});
