/**
 * Acceptance 2 (browser half): the page in web/ (vite build), served with COOP/COEP on 127.0.0.1
 * and driven in Debian's headless chromium with WebGPU on SwiftShader, trains the built-in tiny
 * Qwen2 (full fine-tuning, the library's pipeline run in the page) for 20 steps: the loss falls and
 * every step matches the cpu backend (same model seed, text, batches and schedule) within 1e-4; the
 * chart is drawn and GPU memory is shown. The picked-files / LoRA half: browser-tool.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { runTraining } from '../src/runtime/train.js';
import { buildPage, CHROMIUM, launchChromium, serveStatic } from './browser-serve.js';

const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.warn(`\n*** ${CHROMIUM} missing (apt-get install chromium): browser tests SKIPPED ***\n`);

// Must match the page's build (web/prepare.ts defaults: model seed 1, 100,000 characters).
const run = { steps: 20, batch: 2, seq: 32, lr: 3e-3, seed: 5, warmup: 2 };
const pageQuery = { ...run, model: 'tiny', mode: 'full', sample: 0, auto: 1 };

interface PageState {
  records: { step: number; loss: number; gpuLiveMiB: number; ms: number }[];
  downloads: string[];
  done: boolean;
  error?: string;
}

describe.skipIf(!haveChromium)('the training page in headless chromium (WebGPU on SwiftShader)', () => {
  it('trains 20 steps with falling losses equal to the cpu backend’s within 1e-4', async () => {
    const { dir: outDir, seconds: tBuild } = await buildPage();
    expect(fs.existsSync(path.join(outDir, 'data/tiny.onnx'))).toBe(true);
    const server = await serveStatic(outDir);
    const browser = await launchChromium();
    const errors: string[] = [];
    let state: PageState;
    let pixels: number;
    let mem: string;
    try {
      const page = await browser.context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const query = new URLSearchParams(Object.fromEntries(Object.entries(pageQuery).map(([k, v]) => [k, String(v)])));
      const t1 = performance.now();
      await page.goto(`${server.url}?${query}`);
      await page.waitForFunction(() => (window as unknown as { ortfuse?: PageState }).ortfuse?.done, null, { timeout: 240_000 });
      state = await page.evaluate(() => (window as unknown as { ortfuse: PageState }).ortfuse);
      console.log(`page: vite build ${tBuild.toFixed(1)} s, load + 20 steps ${((performance.now() - t1) / 1000).toFixed(1)} s`);
      mem = (await page.textContent('#mem')) ?? '';
      // Blue pixels of the loss curve on the canvas.
      pixels = await page.evaluate(() => {
        const c = document.getElementById('chart') as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 200 && d[i] < 100 && d[i + 3] > 0) n++;
        return n;
      });
    } finally {
      await browser.close();
      await server.close();
      fs.rmSync(outDir, { recursive: true, force: true });
    }
    expect(state.error, state.error).toBeUndefined();
    expect(errors).toEqual([]);
    expect(state.records.map((r) => r.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const later = state.records.slice(2).map((r) => r.ms);
    const mean = later.reduce((a, b) => a + b, 0) / later.length;
    console.log(`page: ${(1000 / mean).toFixed(2)} steps/s (mean ${mean.toFixed(0)} ms of steps 3..20, best ${Math.min(...later).toFixed(0)} ms, first ${state.records[0].ms.toFixed(0)} ms)`);

    const cpu = await runTraining(buildQwen2(TINY, { seed: 1 }), mobyDick().slice(0, 100_000), await getTokenizer('bytes'),
      { ...run, fuse: true, backend: 'cpu' });
    const deltas = state.records.map((r, i) => Math.abs(r.loss - cpu[i].loss));
    console.log(`chromium vs cpu |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}`);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    const losses = state.records.map((r) => r.loss);
    expect(losses[9]).toBeLessThan(losses[0] - 1);
    expect(state.records[9].gpuLiveMiB).toBeGreaterThan(1);
    expect(mem).toMatch(/\d+\.\d+ MiB live \(peak \d+\.\d+ MiB/);
    expect(pixels).toBeGreaterThan(200);
    expect(state.downloads).toEqual(['model.safetensors']);
  });
});
