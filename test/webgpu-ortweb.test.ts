/**
 * Our kernels on onnxruntime-web's own GPUDevice inside Node (dawn.node + the shims of
 * src/webgpu/dawn-node.ts): an ORT output buffer goes through our WGSL SwiGLU and back into ORT with
 * Tensor.fromGpuBuffer, with no download in between.
 */
import { describe, expect, it } from 'vitest';
import { swigluForward } from '../custom-ops/swiglu/webgpu/swiglu.js';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { GpuContext } from '../src/webgpu/context.js';
import { useLiftoffOnly } from '../src/webgpu/dawn-node.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();

describe.skipIf(!env.ctx)('kernels on ORT-web’s device (Node)', () => {
  it('ORT output → WGSL SwiGLU → ORT input, zero-copy', async () => {
    useLiftoffOnly();
    const keepAlive = setInterval(() => {}, 10);
    try {
      const ort = await import('onnxruntime-web/webgpu');
      ort.env.wasm.numThreads = 1;
      const m = createModel();
      const b = new GraphBuilder(m.graph);
      b.output(b.op.Add(b.input('x', DataType.FLOAT, [4, 8]), b.input('x2', DataType.FLOAT, [4, 8])), 'y');
      const s = await ort.InferenceSession.create(saveBytes(m), { executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer' });
      const xs = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 8);
      const t = (d: Float32Array) => new ort.Tensor('float32', d, [4, 8]);
      const r = await s.run({ x: t(xs), x2: t(xs) });
      expect(r.y.location).toBe('gpu-buffer');
      const ctx = new GpuContext(ort.env.webgpu.device as unknown as GPUDevice);
      const yb = r.y.gpuBuffer as unknown as GPUBuffer;
      const sw = swigluForward(ctx, { gate: yb, up: yb, n: 32 });
      await ctx.sync();
      const r2 = await s.run({ x: ort.Tensor.fromGpuBuffer(sw as never, { dataType: 'float32', dims: [4, 8] }), x2: t(new Float32Array(32)) });
      const got = (await r2.y.getData()) as Float32Array;
      const want = Array.from(xs, (x) => { const g = 2 * x; return (g * g) / (1 + Math.exp(-g)); });
      for (let i = 0; i < 32; i++) expect(got[i]).toBeCloseTo(want[i], 4);
      r.y.dispose();
      r2.y.dispose();
      sw.destroy();
      await s.release();
    } finally {
      clearInterval(keepAlive);
    }
  });
});
