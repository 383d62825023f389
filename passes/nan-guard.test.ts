import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { nanGuardPass } from './nan-guard.js';

function guarded(swap = false) {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, [2, 3]);
  const p = b.op.Softmax(x, { axis: -1 });
  const zero = b.constant(0, { dtype: DataType.FLOAT });
  // swap: Where(IsNaN(p), p, 0) is not the guard (keeps the NaN, zeroes the rest)
  b.output(swap ? b.op.Where(b.op.IsNaN(p), p, zero) : b.op.Where(b.op.IsNaN(p), zero, p), 'y');
  return m;
}

async function run(m: ReturnType<typeof createModel>, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(saveBytes(m), { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  const out = (await s.run({ x: new ort.Tensor('float32', x, [2, 3]) })).y.data as Float32Array;
  await s.release();
  return out;
}

describe('nan-guard', () => {
  it('Where(IsNaN(x), c, x) -> Where(Equal(x, x), x, c): no IsNaN left, same values with and without NaN rows', async () => {
    for (const x of [Float32Array.from([1, 2, 3, -1, 0, 5]), Float32Array.from([-Infinity, -Infinity, -Infinity, 0, 1, 2])]) {
      const before = await run(guarded(), x);
      const m = guarded();
      const r = nanGuardPass.run(m, newContext());
      expect(r.counts['nan-guard']).toBe(1);
      expect(m.graph.nodes.map((n) => n.opType).sort()).toEqual(['Equal', 'Softmax', 'Where']);
      expect(Array.from(await run(m, x))).toEqual(Array.from(before));
    }
    // the all -inf row really was NaN before the guard: the test sees the guard at work
    expect(Array.from(await run(guarded(), Float32Array.from([-Infinity, -Infinity, -Infinity, 0, 1, 2]))).slice(0, 3)).toEqual([0, 0, 0]);
  });

  it('leaves Where(IsNaN(x), x, c) alone', () => {
    const m = guarded(true);
    expect(nanGuardPass.run(m, newContext()).modified).toBe(false);
  });
});
