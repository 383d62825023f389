import { describe, expect, it } from 'vitest';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { cloneModel } from '../src/autodiff/clone.js';
import { checkModel } from '../src/ir/checker.js';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { maxAbsDiff, opCounts, randomFeeds, runOrt } from '../src/rewrite/testing.js';
import { prepareTraining } from '../src/runtime/session.js';
import { specializeShapes } from './specialize-shapes.js';

const { FLOAT: F, INT64: I64 } = DataType;

describe('specialize-shapes', () => {
  it('binds the symbols of the inputs everywhere and folds the Shape plumbing into initializers', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['batch', 'seq', 4]);
    const y = b.input('y', F, ['seq', 4]);
    const i64 = (v: number[]) => b.constant(v, { dtype: I64, dims: [v.length] });
    // Reshape(x, [Shape(x)[0] * Shape(x)[1], -1]) + y tiled by batch: exporter-style plumbing.
    const s = b.op.Shape(x);
    const rows = b.op.Mul(b.op.Slice(s, i64([0]), i64([1])), b.op.Slice(s, i64([1]), i64([2])));
    const flat = b.op.Reshape(x, b.op.Concat(rows, i64([-1]), { axis: 0 }));
    const tiled = b.op.Reshape(b.op.Expand(y, b.op.Shape(x)), b.op.Concat(rows, i64([4]), { axis: 0 }));
    b.output(b.op.Add(flat, tiled), 'z');
    const before = await runOrt(m, randomFeeds(m, 3, { batch: 3, seq: 5 }));
    const r = specializeShapes({ x: [3, 5, 4] }).run(m, newContext());
    expect(r.modified).toBe(true);
    expect(r.counts['constant-fold.Shape']).toBe(2);
    expect(opCounts(m)).toEqual({ Reshape: 2, Expand: 1, Add: 1 });
    expect(m.graph.inputs.map((v) => v.tensorType?.shape)).toEqual([[3, 5, 4], [5, 4]]);
    expect(m.graph.outputs[0].tensorType?.shape).toEqual([15, 4]);
    for (const n of m.graph.nodes) for (const o of n.outputs) expect(o.tensorType?.shape?.every((d) => typeof d === 'number'), o.name).toBe(true);
    expect(checkModel(m).filter((p) => p.severity === 'error')).toEqual([]);
    const after = await runOrt(m, randomFeeds(m, 3, { batch: 3, seq: 5 }));
    expect(maxAbsDiff(after[0], before[0])).toBe(0);
  });

  it('refuses shapes that contradict the input', () => {
    const mk = () => {
      const m = createModel();
      const b = new GraphBuilder(m.graph);
      b.output(b.op.Add(b.input('a', F, ['n', 2]), b.input('c', F, ['n', 2])), 'o');
      return m;
    };
    expect(() => specializeShapes({ a: [3, 3] }).run(mk(), newContext())).toThrow(/dim 1 of 'a' is 2, not 3/);
    expect(() => specializeShapes({ a: [3] }).run(mk(), newContext())).toThrow(/rank 2, not 1/);
    expect(() => specializeShapes({ a: [3, 2], c: [4, 2] }).run(mk(), newContext())).toThrow(/'n' is both 3 and 4/);
    expect(() => specializeShapes({ q: [3, 2] }).run(mk(), newContext())).toThrow(/no input 'q'/);
  });

  it('the tiny Qwen2 training step specialised to 2x8: no Shape/Range left, same loss and gradients in onnxruntime-node', async () => {
    const { train } = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'cpu' });
    const spec = cloneModel(train);
    specializeShapes({ input_ids: [2, 8], labels: [2, 8] }).run(spec, newContext());
    const [c0, c1] = [opCounts(train), opCounts(spec)];
    // CumSum/GatherND of the mask stay (no JS evaluator); ORT folds them once at session creation.
    // (RoPE's gradient halves, the Div of the plumbing, now live inside RoPEGrad's body.)
    for (const op of ['Shape', 'Range', 'Max']) {
      expect(c0[op] ?? 0, op).toBeGreaterThan(0);
      expect(c1[op] ?? 0, op).toBe(0);
    }
    expect(spec.graph.nodes.length).toBeLessThan(train.graph.nodes.length * 0.85);
    const feeds = randomFeeds(train, 4, { batch: 2, seq: 8 }, TINY.vocab_size);
    const [want, got] = [await runOrt(train, feeds), await runOrt(spec, feeds)];
    expect(got.length).toBe(want.length);
    got.forEach((t, i) => expect(maxAbsDiff(t, want[i]), spec.graph.outputs[i].name).toBeLessThan(1e-6));
  });
});
