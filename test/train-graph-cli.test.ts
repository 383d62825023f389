/**
 * `ortfuse optimize --train`: the written training-step graph (fused, or --no-fuse) of the torch
 * fixture runs in onnxruntime-node with only input_ids and labels fed (parameters default to the
 * model's weights) and gives torch's loss and gradients; the --target webgpu file loads and runs in
 * onnxruntime-web (wasm).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import * as ortw from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import { loadFile } from '../src/onnx/io.js';
import { relL2 } from './numerics.js';

const FIXTURE = new URL('../models/fixtures/qwen2-tiny.onnx', import.meta.url).pathname;
const fx = JSON.parse(fs.readFileSync(FIXTURE.replace(/\.onnx$/, '.json'), 'utf8')) as {
  loss: number; inputs: { input_ids: number[][]; labels: number[][] }; grads: Record<string, { data: unknown }>;
  param_to_initializer: Record<string, string>;
};
// optimize --train names parameters by their torch names (src/params: the tied embedding is
// model.embed_tokens.weight, which the exporter stored as lm_head.weight); the fixture's gradients
// are keyed by initializer name.
const grads = Object.fromEntries(Object.entries(fx.param_to_initializer).map(([torch, onnx]) => [torch, fx.grads[onnx]]));

async function optimizeTrain(...flags: string[]): Promise<{ file: string; stdout: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opt-train-'));
  const file = path.join(dir, 'train.onnx');
  let stdout = '';
  let stderr = '';
  const code = await runCli(['optimize', FIXTURE, '-o', file, '--train', ...flags], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), cwd: dir });
  expect(stderr).toBe('');
  expect(code).toBe(0);
  return { file, stdout };
}

function feeds(T: typeof ort | typeof ortw): Record<string, ort.Tensor> {
  const dims = [fx.inputs.input_ids.length, fx.inputs.input_ids[0].length];
  const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
  return { input_ids: new T.Tensor('int64', i64(fx.inputs.input_ids), dims), labels: new T.Tensor('int64', i64(fx.inputs.labels), dims) } as Record<string, ort.Tensor>;
}


function expectTorch(out: Record<string, { data: unknown }>): void {
  expect(Math.abs(Number((out.loss.data as Float32Array)[0]) - fx.loss) / fx.loss).toBeLessThan(1e-5);
  for (const [p, g] of Object.entries(grads))
    expect(relL2(out[`grad.${p}`].data as Float32Array, (g.data as number[]).flat(Infinity as 1) as number[]), p).toBeLessThan(1e-3);
}

describe('ortfuse optimize --train', () => {
  it.each([['fused', []], ['--no-fuse', ['--no-fuse']]] as const)('%s: the step graph runs in onnxruntime-node and matches torch', async (mode, flags) => {
    const { file, stdout } = await optimizeTrain(...flags);
    const m = loadFile(file);
    const fused = m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType);
    if (mode === 'fused') {
      expect(fused).toContain('FusedLinearCrossEntropyWithGrad');
      expect(m.functions.map((f) => f.name).sort()).toEqual([
        'FusedLinearCrossEntropyWithGrad', 'RMSNorm', 'RMSNormGrad', 'RoPE', 'RoPEGrad', 'SwiGLU', 'SwiGLUGrad',
      ]);
      expect(stdout).toMatch(/fuse-linear-cross-entropy/);
    } else expect(fused).toEqual([]);
    expect(m.graph.outputs.map((v) => v.name).sort()).toEqual(['loss', ...Object.keys(grads).map((p) => `grad.${p}`)].sort());
    expect(m.graph.inputs.length).toBe(2 + Object.keys(grads).length);
    const s = await ort.InferenceSession.create(file);
    expectTorch(await s.run(feeds(ort)));
    await s.release();
  });

  it('--target webgpu: loads and runs in onnxruntime-web (wasm), no Loop in the bodies', async () => {
    const { file } = await optimizeTrain('--target', 'webgpu');
    const m = loadFile(file);
    for (const f of m.functions) expect([...f.body.allNodes()].some((n) => n.opType === 'Loop'), f.name).toBe(false);
    ortw.env.wasm.numThreads = 1;
    const s = await ortw.InferenceSession.create(new Uint8Array(fs.readFileSync(file)));
    expectTorch(await s.run(feeds(ortw) as never));
  });

  it('--target webgpu --no-fuse: the loss is lowered to ops with WebGPU kernels (no SoftmaxCrossEntropyLoss), same numbers', async () => {
    const { file } = await optimizeTrain('--target', 'webgpu', '--no-fuse');
    const ops = new Set(loadFile(file).graph.nodes.map((n) => n.opType));
    for (const op of ['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'LogSoftmax']) expect(ops.has(op), op).toBe(false);
    expect(ops.has('ReduceLogSumExp')).toBe(true);
    const s = await ort.InferenceSession.create(file);
    expectTorch(await s.run(feeds(ort)));
    await s.release();
  });

  it('--no-fuse without --train is a usage error', async () => {
    let stderr = '';
    const code = await runCli(['optimize', FIXTURE, '--no-fuse'], { stdout: () => {}, stderr: (t) => void (stderr += t), cwd: os.tmpdir() });
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/--no-fuse only applies with --train/);
  });
});
