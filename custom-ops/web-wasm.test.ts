/** Every fused op's portable bodies (cpu and webgpu) on onnxruntime-web's wasm backend in Node. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as ortw from 'onnxruntime-web';
import { DataType } from '../src/onnx/schema.js';
import { saveBytes } from '../src/onnx/io.js';
import type { Model } from '../src/ir/index.js';
import { fusedLinearCrossEntropy } from './fused-linear-cross-entropy/function.js';
import { linearCrossEntropyRef } from './fused-linear-cross-entropy/reference.js';
import { rmsNorm } from './rms-norm/function.js';
import { rmsNormRef } from './rms-norm/reference.js';
import { rope } from './rope/function.js';
import { ropeRef } from './rope/reference.js';
import { swiglu } from './swiglu/function.js';
import { swigluRef } from './swiglu/reference.js';
import { swigluMlp } from './swiglu-mlp/function.js';
import { swigluMlpRef } from './swiglu-mlp/reference.js';
import { fusedModel, randn, relErr, rng } from './testing.js';
import type { Target } from '../src/fused/types.js';

const F = DataType.FLOAT;

interface Case {
  model(target: Target): Model;
  feeds: Record<string, ortw.Tensor>;
  want: ArrayLike<number>;
}

const t32 = (d: Float32Array, dims: number[]) => new ortw.Tensor('float32', d, dims);

function cases(): Record<string, Case> {
  const r = rng(42);
  const [n, h, v] = [29, 16, 200];
  const hidden = randn(r, n * h);
  const weight = randn(r, v * h, 0.3);
  const bias = randn(r, v);
  const labels = Array.from({ length: n }, (_, i) => (i % 6 === 2 ? -100 : Math.floor(r() * v)));
  const x = randn(r, 6 * 32);
  const w = randn(r, 32);
  const g = randn(r, 5 * 24, 3);
  const u = randn(r, 5 * 24);
  const q = randn(r, 2 * 3 * 4 * 8);
  const cos = randn(r, 4 * 8);
  const sin = randn(r, 4 * 8);
  const [mh, mi] = [12, 20];
  const mx = randn(r, 2 * 3 * mh), wg = randn(r, mi * mh, 0.5), wu = randn(r, mi * mh, 0.5), wd = randn(r, mh * mi, 0.5);
  return {
    FusedLinearCrossEntropy: {
      model: (t) => fusedModel(fusedLinearCrossEntropy, [{ name: 'hidden', elem: F, shape: ['N', h] }, { name: 'weight', elem: F, shape: [v, h] },
        { name: 'bias', elem: F, shape: [v] }, { name: 'labels', elem: DataType.INT64, shape: ['N'] }],
      { reduction: 'none', label_smoothing: { float: 0.1 }, chunk_size: 8, num_chunks: 4 }, t, { output: { name: 'y', elem: F, shape: ['N'] } }),
      feeds: { hidden: t32(hidden, [n, h]), weight: t32(weight, [v, h]), bias: t32(bias, [v]), labels: new ortw.Tensor('int64', BigInt64Array.from(labels, BigInt), [n]) },
      want: linearCrossEntropyRef({ n, h, v, hidden, weight, bias, labels }, { reduction: 'none', labelSmoothing: 0.1 }).loss,
    },
    RMSNorm: {
      model: (t) => fusedModel(rmsNorm, [{ name: 'x', elem: F, shape: [6, 32] }, { name: 'w', elem: F, shape: [32] }], { epsilon: { float: 1e-6 } }, t,
        { output: { name: 'y', elem: F, shape: [6, 32] } }),
      feeds: { x: t32(x, [6, 32]), w: t32(w, [32]) },
      want: rmsNormRef(x, w, 32, 1e-6).y,
    },
    SwiGLU: {
      model: (t) => fusedModel(swiglu, [{ name: 'g', elem: F, shape: [5, 24] }, { name: 'u', elem: F, shape: [5, 24] }], {}, t,
        { output: { name: 'y', elem: F, shape: [5, 24] } }),
      feeds: { g: t32(g, [5, 24]), u: t32(u, [5, 24]) },
      want: swigluRef(g, u),
    },
    RoPE: {
      model: (t) => fusedModel(rope, [{ name: 'x', elem: F, shape: [2, 3, 4, 8] }, { name: 'c', elem: F, shape: [1, 1, 4, 8] }, { name: 's', elem: F, shape: [1, 1, 4, 8] }], {}, t,
        { output: { name: 'y', elem: F, shape: [2, 3, 4, 8] } }),
      feeds: { x: t32(q, [2, 3, 4, 8]), c: t32(cos, [1, 1, 4, 8]), s: t32(sin, [1, 1, 4, 8]) },
      want: ropeRef(q, cos, sin, { b: 2, heads: 3, s: 4, d: 8, bc: 1 }),
    },
    SwiGLUMLP: {
      model: (t) => fusedModel(swigluMlp, [{ name: 'x', elem: F, shape: [2, 3, mh] }, { name: 'wg', elem: F, shape: [mi, mh] }, { name: 'wu', elem: F, shape: [mi, mh] },
        { name: 'wd', elem: F, shape: [mh, mi] }], {}, t, { output: { name: 'y', elem: F, shape: [2, 3, mh] } }),
      feeds: { x: t32(mx, [2, 3, mh]), wg: t32(wg, [mi, mh]), wu: t32(wu, [mi, mh]), wd: t32(wd, [mh, mi]) },
      want: swigluMlpRef(mx, wg, wu, wd, { m: 6, h: mh, i: mi }),
    },
  };
}

describe('fused-op bodies on onnxruntime-web (wasm) in Node', () => {
  beforeAll(() => {
    ortw.env.wasm.numThreads = 1;
  });
  for (const [name, c] of Object.entries(cases()))
    for (const target of ['cpu', 'webgpu'] as Target[])
      it(`${name} ${target} body`, async () => {
        const s = await ortw.InferenceSession.create(saveBytes(c.model(target)), { executionProviders: ['wasm'], graphOptimizationLevel: 'disabled' });
        const out = await s.run(c.feeds);
        await s.release();
        expect(relErr(out.y.data as Float32Array, c.want)).toBeLessThan(1e-5);
      });
});
