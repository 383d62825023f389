/**
 * The unfused baseline on the `webgpu` backend: `ortfuse train --backend webgpu --no-fuse` trains
 * the tiny Qwen2 with its loss lowered for the GPU (passes/lower-softmax-cross-entropy, applied by
 * prepareTraining before autodiff) and the cpu backend's losses (original SoftmaxCrossEntropyLoss)
 * within 1e-4 per step, and ORT never downloads an [N, V] tensor to the host for a CPU-placed op.
 * The lowered loss and its autodiff gradient on ORT-web's WebGPU EP equal the original op's on
 * onnxruntime-node, also for logits of large magnitude (ORT-web's ReduceLogSumExp sees x − floor(max)).
 * Runs on SwiftShader where no GPU exists (few steps: CI has 2 cores).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as ortNode from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { lowerSoftmaxCrossEntropyPass } from '../passes/lower-softmax-cross-entropy.js';
import { addGradients } from '../src/autodiff/index.js';
import { removeDeadCode } from '../src/autodiff/clone.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { randn, rng } from '../src/random.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { runCli } from '../src/cli/program.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import type { Model } from '../src/ir/graph.js';
import { opCounts } from '../src/rewrite/testing.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();
const base: TrainOptions = { steps: 4, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: false, warmup: 1 };
const text = mobyDick().slice(0, 100_000);

/** SCE(x [N, V], labels, ignore_index -100, mean) → (loss, d loss / dx), lowered or not. */
function sceWithGrad(n: number, v: number, lower: boolean): Uint8Array {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, [n, v]);
  const y = b.input('y', DataType.INT64, [n]);
  b.output(b.op.SoftmaxCrossEntropyLoss(x, y, { ignore_index: -100, reduction: 'mean' }), 'loss');
  if (lower) expect(lowerSoftmaxCrossEntropyPass.run(m, newContext()).modified).toBe(true);
  inferShapes(m); // as buildTrainingGraph does: static shapes for the gradient rules
  const { grads } = addGradients(m.graph, { loss: m.graph.outputs[0], wrt: [x] });
  b.output(grads.get(x)!, 'dx');
  removeDeadCode(m.graph);
  return saveBytes(m);
}

describe.skipIf(!env.ctx)('webgpu backend, unfused graph (loss lowered for the GPU)', () => {
  it('the lowered loss and gradient on ORT-web WebGPU equal the original op on onnxruntime-node (logits up to ~1e4)', async () => {
    const [n, v] = [48, 3000];
    const { ort: web } = await nodeOrtWeb();
    const gpu = await web.InferenceSession.create(sceWithGrad(n, v, true), { executionProviders: ['webgpu'], logSeverityLevel: 3 });
    const cpu = await ortNode.InferenceSession.create(sceWithGrad(n, v, false), { graphOptimizationLevel: 'disabled' });
    try {
      for (const [scale, offset] of [[3, 0], [300, 5000], [1000, -8000]]) {
        const r = rng(scale);
        const x = randn(r, n * v, scale).map((t) => t + offset);
        const y = BigInt64Array.from({ length: n }, (_, i) => (i % 5 === 1 ? -100n : BigInt(Math.floor(r() * v))));
        const got = await gpu.run({ x: new web.Tensor('float32', x, [n, v]), y: new web.Tensor('int64', y, [n]) });
        const want = await cpu.run({ x: new ortNode.Tensor('float32', x, [n, v]), y: new ortNode.Tensor('int64', y, [n]) });
        const [gl, wl] = [Number((await got.loss.getData())[0]), Number(want.loss.data[0])];
        const [gd, wd] = [(await got.dx.getData()) as Float32Array, want.dx.data as Float32Array];
        let err = 0, top = 0;
        for (let i = 0; i < wd.length; i++) {
          err = Math.max(err, Math.abs(gd[i] - wd[i]));
          top = Math.max(top, Math.abs(wd[i]));
        }
        console.log(`logits N(0, ${scale}) + ${offset}: loss ${gl} vs ${wl}; max |Δdx| / max |dx| ${(err / top).toExponential(1)}`);
        expect(Number.isFinite(gl)).toBe(true);
        expect(Math.abs(gl - wl) / Math.abs(wl)).toBeLessThan(1e-5);
        expect(err / top).toBeLessThan(1e-4);
      }
    } finally {
      await gpu.release();
      await cpu.release();
    }
  });

  it('trains the unfused tiny Qwen2 with the cpu backend’s losses within 1e-4; no [N, V] download', async () => {
    const tok = await getTokenizer('bytes');
    const proto = (globalThis as unknown as { GPUBuffer: { prototype: GPUBuffer } }).GPUBuffer.prototype;
    const mapAsync = proto.mapAsync;
    const downloads: number[] = [];
    proto.mapAsync = function (this: GPUBuffer, mode: number, ...rest: unknown[]) {
      if (mode & GPUMapMode.READ && this.label === '') downloads.push(this.size);
      return (mapAsync as (...a: unknown[]) => Promise<void>).call(this, mode, ...rest);
    } as GPUBuffer['mapAsync'];
    const graphs: Record<string, Model> = {};
    let gpu;
    try {
      gpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'webgpu' }, {
        onStart: ({ prepared }) => void (graphs.webgpu = prepared.train),
      });
    } finally {
      proto.mapAsync = mapAsync;
    }
    const cpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...base, backend: 'cpu' }, {
      onStart: ({ prepared }) => void (graphs.cpu = prepared.train),
    });
    // The webgpu graph is the lowered one; the cpu backend keeps the exported loss op.
    const [w, c] = [opCounts(graphs.webgpu), opCounts(graphs.cpu)];
    expect(w.SoftmaxCrossEntropyLoss ?? 0).toBe(0);
    expect(w.ReduceLogSumExp).toBe(1);
    expect(w.FusedLinearCrossEntropy ?? 0).toBe(0);
    expect(c.SoftmaxCrossEntropyLoss).toBe(1);
    const deltas = gpu.map((r, i) => Math.abs(r.loss - cpu[i].loss));
    console.log(`unfused webgpu vs cpu |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}; ms/step ${gpu.map((r) => r.ms.toFixed(0)).join(' ')}`);
    expect(gpu).toHaveLength(base.steps);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    for (let i = 0; i < gpu.length; i++) expect(Math.abs(gpu[i].gradNorm - cpu[i].gradNorm) / cpu[i].gradNorm).toBeLessThan(1e-3);
    expect(gpu[gpu.length - 1].loss).toBeLessThan(gpu[0].loss);
    // ORT's own downloads (for CPU-placed ops): none as large as one [N, V] float tensor.
    const nv = base.batch * base.seq * TINY.vocab_size * 4;
    console.log(`ORT downloads over ${base.steps} steps + evaluation: ${downloads.length}, largest ${Math.max(0, ...downloads)} bytes ([N, V] = ${nv})`);
    for (const size of downloads) expect(size).toBeLessThan(nv / 8);
  });

  it('ortfuse train --backend webgpu --no-fuse writes the cpu backend’s losses', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wgpu-unfused-'));
    const run = async (backend: string) => {
      let out = '';
      const code = await runCli(['train', '--backend', backend, '--no-fuse', '--steps', '2', '--batch', '2', '--seq', '16', '--json', `${backend}.jsonl`, '--no-progress'],
        { stdout: (t) => void (out += t), stderr: (t) => void (out += t), cwd: dir });
      expect(code, out).toBe(0);
      return fs.readFileSync(path.join(dir, `${backend}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number });
    };
    const [g, c] = [await run('webgpu'), await run('cpu')];
    expect(g).toHaveLength(2);
    g.forEach((r, i) => expect(Math.abs(r.loss - c[i].loss)).toBeLessThan(1e-4));
  });
});
