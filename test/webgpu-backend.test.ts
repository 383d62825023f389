/**
 * Acceptance 2 (Node half): the `webgpu` backend (onnxruntime-web's WebGPU EP on dawn.node, with
 * our clip + AdamW kernels on ORT's device) trains the tiny Qwen2 with the cpu backend's losses
 * within 1e-4 at every step. Runs on SwiftShader where no GPU exists; the test points
 * VK_ICD_FILENAMES at chromium's SwiftShader when the ICD is installed.
 *
 * Also: one 16-byte readback per step (gradients never come to the host), no GPU memory growth
 * across steps, checkpoint/resume on the GPU, and `ortfuse train --backend webgpu --json`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { runCli } from '../src/cli/program.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();
const base: TrainOptions = { steps: 20, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2 };
const text = mobyDick().slice(0, 100_000);

describe.skipIf(!env.ctx)('webgpu backend in Node (dawn.node)', () => {
  it('trains the tiny Qwen2 for 20 steps with the cpu losses within 1e-4; one 16-byte readback per step; no GPU memory growth', async () => {
    const tok = await getTokenizer('bytes');
    const { meter } = await nodeOrtWeb();
    // Count host readbacks (MAP_READ maps) during the webgpu run.
    const proto = (globalThis as unknown as { GPUBuffer: { prototype: GPUBuffer } }).GPUBuffer.prototype;
    const mapAsync = proto.mapAsync;
    const maps: { label: string; size: number }[] = [];
    proto.mapAsync = function (this: GPUBuffer, mode: number, ...rest: unknown[]) {
      if (mode & GPUMapMode.READ) maps.push({ label: this.label, size: this.size });
      return (mapAsync as (...a: unknown[]) => Promise<void>).call(this, mode, ...rest);
    } as GPUBuffer['mapAsync'];
    // Ours are labelled; ORT's own downloads (unlabelled) come from ops it runs on the CPU.
    const ours = () => maps.filter((m) => m.label !== '');
    const perStep: { maps: number; live: number }[] = [];
    let gpu;
    try {
      gpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'webgpu' }, {
        onStep: () => void perStep.push({ maps: ours().length, live: meter.live }),
      });
    } finally {
      proto.mapAsync = mapAsync;
    }
    const cpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'cpu' });
    const deltas = gpu.map((r, i) => Math.abs(r.loss - cpu[i].loss));
    console.log(`webgpu vs cpu |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}`);
    console.log(`webgpu ms/step: ${gpu.map((r) => r.ms.toFixed(0)).join(' ')}; peak GPU ${gpu[gpu.length - 1].peakGpuMiB!.toFixed(2)} MiB`);
    expect(gpu).toHaveLength(20);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    expect(Math.abs(gpu[19].valLoss! - cpu[19].valLoss!)).toBeLessThan(1e-4);
    expect(gpu[19].loss).toBeLessThan(gpu[0].loss - 1.5);
    for (let i = 0; i < 20; i++) expect(Math.abs(gpu[i].gradNorm - cpu[i].gradNorm) / cpu[i].gradNorm).toBeLessThan(1e-3);
    // Steps 2..19 (no evaluation): exactly one readback of ours each, the 16-byte stats buffer.
    for (let i = 1; i < 19; i++) expect(perStep[i].maps - perStep[i - 1].maps).toBe(1);
    expect(new Set(ours().map((m) => `${m.label}:${m.size}`))).toEqual(new Set(['stats readback:16']));
    const theirs = maps.filter((m) => m.label === '');
    console.log(`ORT's own downloads (CPU-placed ops) over 20 steps + 2 evaluations: ${theirs.length}, sizes ${[...new Set(theirs.map((m) => m.size))].join('/')} bytes`);
    expect(perStep[18].live).toBe(perStep[4].live);
    expect(gpu[0].peakGpuMiB).toBeGreaterThan(0);
  });

  it('checkpoints and resumes on the GPU: steps 4..6 of a resumed run equal the uninterrupted run', async () => {
    const tok = await getTokenizer('bytes');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wgpu-train-'));
    const o = { ...base, steps: 6, backend: 'webgpu' };
    const full = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, o);
    const part = path.join(dir, 'p.ckpt');
    await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, stopAfter: 3, checkpoint: part });
    const rest = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, resume: part });
    expect(rest.map((r) => r.step)).toEqual([4, 5, 6]);
    rest.forEach((r, i) => expect(Math.abs(r.loss - full[3 + i].loss)).toBeLessThan(1e-6));
    // The GPU checkpoint resumes on the cpu backend too (same AdamW state layout).
    const cpuRest = await runTraining(buildQwen2(TINY, { seed: 2 }), text, tok, { ...o, backend: 'cpu', resume: part });
    cpuRest.forEach((r, i) => expect(Math.abs(r.loss - full[3 + i].loss)).toBeLessThan(1e-4));
  });

  it('ortfuse train --backend webgpu writes the same JSON lines as cpu', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wgpu-cli-'));
    const run = async (backend: string) => {
      let stdout = '';
      const code = await runCli(['train', '--backend', backend, '--steps', '3', '--batch', '2', '--seq', '16', '--json', `${backend}.jsonl`, '--no-progress'],
        { stdout: (t) => void (stdout += t), stderr: (t) => void (stdout += t), cwd: dir });
      expect(code, stdout).toBe(0);
      // The header says what runs: backend, adapter (and whether it is a software one, with a warning), kernels, precision.
      if (backend === 'webgpu') {
        expect(stdout).toMatch(/backend webgpu on [^\n]+, kernels default \(flce,rmsnorm,swiglu,rope,mlp,attn,linear,glue\), fp32, step memory about [\d.]+ GiB \(estimate\)\n/);
        if (/swiftshader/i.test(stdout)) {
          expect(stdout).toMatch(/backend webgpu on [^\n]*swiftshader[^\n]* \(software adapter\)/i);
          expect(stdout).toMatch(/ortfuse: warning: [^\n]+ is a software adapter \(WebGPU on the CPU\): training runs far slower than with --backend cpu\n/);
        }
      } else expect(stdout).toMatch(/backend cpu \(onnxruntime-node CPU EP\), fp32/);
      return fs.readFileSync(path.join(dir, `${backend}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    };
    const [g, c] = [await run('webgpu'), await run('cpu')];
    expect(g).toHaveLength(3);
    expect(Object.keys(g[0]).sort()).toEqual([...Object.keys(c[0]), 'peakGpuMiB'].sort());
    g.forEach((r, i) => expect(Math.abs(r.loss - c[i].loss)).toBeLessThan(1e-4));
    expect(fs.existsSync(path.join(dir, 'webgpu.svg'))).toBe(true);
  });

  it('refuses a step whose largest tensor exceeds the adapter\'s largest buffer, before building the session', async () => {
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, backend: 'webgpu', batch: 2, seq: 20_000 }))
      .rejects.toThrow(/--batch 2 --seq 20000: the step's largest tensor \(.*\) needs [\d.]+ GiB, more than the largest buffer of the adapter .* \([\d.]+ GiB\); the largest batch shape that fits is --batch 1 --seq \d+/);
  });

  it('rejects an unknown backend', async () => {
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...base, backend: 'cuda' })).rejects.toThrow(/--backend cuda: expected one of cpu, webgpu/);
  });
});
