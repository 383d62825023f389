import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { buildTrainingGraph, cloneModel } from '../src/autodiff/index.js';
import { ensureFunctions } from '../custom-ops/index.js';
import { check } from '../src/ir/checker.js';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import type { Model, Value } from '../src/ir/graph.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { defaultPipeline, runPipeline, stepPipeline } from '../src/pipeline.js';
import { newContext } from '../src/rewrite/pass.js';
import { checkPass, opCounts } from '../src/rewrite/testing.js';
import { adoptExport, prepareTraining } from '../src/runtime/session.js';
import { cpuStepOutputs } from '../test/cpu-step.js';
import { relL2 } from '../test/numerics.js';
import { scatterAddIntoPass } from './scatter-add-into.js';

const F = DataType.FLOAT;

describe('scatter-add-into', () => {
  it('scatters into A instead of adding a scatter onto zeros (Expand or ConstantOfShape, either Add order); keeps the other cases', async () => {
    const m = createModel({ opset: 18 });
    const b = new GraphBuilder(m.graph);
    const a = b.input('a', F, [5, 3]), w = b.input('w', F, [5, 3]), row = b.input('row', F, [3]);
    const idx = b.input('idx', DataType.INT64, [4, 1]), upd = b.input('upd', F, [4, 3]);
    const shape = () => b.constant([5, 3]);
    const expand = (x: number) => b.op.Expand(b.constant(x, { dtype: F }), shape());
    const scatter = (data: Value, reduction = 'add') => b.op.ScatterND(data, idx, upd, { reduction });
    b.output(b.op.Add(a, scatter(expand(0))), 'expand'); // Add(a, ScatterND(Expand(0))) -> ScatterND(a)
    b.output(b.op.Add(scatter(b.op.ConstantOfShape(shape())), a), 'constant_of_shape'); // Add(ScatterND(ConstantOfShape), a) -> ScatterND(a)
    const shared = scatter(expand(0));
    b.output(b.op.Add(a, shared), 'shared'); // the scatter is read by the Relu too: kept
    b.output(b.op.Relu(shared), 'relu');
    const output = scatter(expand(0));
    b.output(b.op.Add(a, output), 'output_sum'); // the scatter is a graph output too: kept
    b.output(output, 'scattered');
    b.output(b.op.Add(a, scatter(w)), 'not_zeros'); // data w: kept
    b.output(b.op.Add(a, scatter(expand(1))), 'ones'); // Expand(1): kept
    b.output(b.op.Add(row, scatter(expand(0))), 'broadcast'); // row [3] is not the zeros' [5, 3]: kept
    b.output(b.op.Add(a, scatter(expand(0), 'none')), 'no_reduction');
    inferShapes(m);
    const res = await checkPass(m, scatterAddIntoPass, { dims: {} });
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ 'scatter-add-into': 2 });
    expect(res.before).toMatchObject({ Add: 8, ScatterND: 8, Expand: 6, ConstantOfShape: 1 });
    expect(res.after).toMatchObject({ Add: 6, ScatterND: 8, Expand: 6 }); // the dead Expand is left for dce
    const out = (name: string) => m.graph.outputs.find((o) => o.name === name)!.producer!;
    for (const name of ['expand', 'constant_of_shape']) {
      expect(out(name).opType).toBe('ScatterND');
      expect(out(name).inputs[0]!.name).toBe('a');
      expect(out(name).attrString('reduction', 'none')).toBe('add');
    }
    for (const name of ['shared', 'output_sum', 'not_zeros', 'ones', 'broadcast', 'no_reduction']) expect(out(name).opType, name).toBe('Add');
    // Repeated indices (random in [0, 4)): the sums differ from the unrewritten form in rounding order only.
    for (const d of res.diffs) expect(d).toBeLessThan(1e-6);
    expect(res.second).toEqual({ modified: false, counts: {} });
  });

  it('does not fire on data of another element type than the zeros', () => {
    const m = createModel({ opset: 18 });
    const b = new GraphBuilder(m.graph);
    const zeros = b.op.Expand(b.constant(0, { dtype: DataType.DOUBLE }), b.constant([2, 2]));
    b.output(b.op.Add(b.input('a', F, [2, 2]), b.op.ScatterND(zeros, b.input('idx', DataType.INT64, [1, 1]), b.input('upd', DataType.DOUBLE, [1, 2]), { reduction: 'add' })), 'y');
    inferShapes(m);
    expect(scatterAddIntoPass.run(m, newContext()).modified).toBe(false);
  });
});

describe('scatter-add-into on the tiny Qwen2 training graph (tied embedding and lm_head)', () => {
  /** The fused forward and its step graph as autodiff builds it (before stepPipeline). */
  const built = (): { model: Model; train: Model } => {
    const model = buildQwen2(TINY, { seed: 1 });
    adoptExport(model);
    runPipeline(model, defaultPipeline({ mlp: true, attention: true, linear: true }), { options: { training: true } });
    const train = buildTrainingGraph(model, { ops: FUSED_OPS });
    ensureFunctions(train, 'cpu');
    return { model, train };
  };

  it('the lm_head gradient plus the embedding scatter becomes one ScatterND into the lm_head gradient', () => {
    const { train } = built();
    const grad = () => train.graph.outputs.find((o) => o.name === 'grad.lm_head.weight')!.producer!;
    expect(grad().opType).toBe('Add');
    const before = opCounts(train);
    const r = runPipeline(train, stepPipeline(), { checkEachPass: true });
    const after = opCounts(train);
    expect(r.passes.map((x) => x.counts)).toEqual([{ 'scatter-add-into': 1 }, { nodes: 1, initializers: 1 }]);
    console.log(`tiny Qwen2 step graph: ScatterND ${before.ScatterND} -> ${after.ScatterND}, Add ${before.Add} -> ${after.Add}, Expand ${before.Expand} -> ${after.Expand ?? 0}`);
    const less = (c: Record<string, number>, op: string) => ({ ...c, [op]: c[op] - 1 });
    const zeroless = (c: Record<string, number>) => Object.fromEntries(Object.entries(c).filter(([, n]) => n > 0));
    expect(after).toEqual(zeroless(less(less(before, 'Add'), 'Expand')));
    expect(grad().opType).toBe('ScatterND');
    expect(grad().inputs[0]!.producer!.opType).toBe('FusedLinearCrossEntropyWithGrad');
    // prepareTraining runs it, for every target.
    for (const target of ['cpu', 'webgpu'] as const) {
      const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseAttention: true, fuseLinear: true, target });
      expect(p.report!.passes.find((x) => x.name === 'scatter-add-into')!.counts, target).toEqual({ 'scatter-add-into': 1 });
      expect(p.train.graph.outputs.find((o) => o.name === 'grad.lm_head.weight')!.producer!.opType).toBe('ScatterND');
      check(p.train);
    }
  });

  it('the rewritten step gives the loss and every gradient of the unrewritten one (onnxruntime-node, 1e-6)', async () => {
    const { model, train } = built();
    const rewritten = cloneModel(train);
    expect(runPipeline(rewritten, stepPipeline()).passes[0].modified).toBe(true);
    const params = new Map(model.graph.initializers.filter((v) => v.initializer!.dtype === F).map((v) => [v.name, v.initializer!.toArray() as Float32Array]));
    const want = await cpuStepOutputs(train, params, 2, 16);
    const got = await cpuStepOutputs(rewritten, params, 2, 16);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    let worst = 0, worstAbs = 0;
    for (const [name, w] of Object.entries(want)) {
      const abs = w.reduce((m, x, i) => Math.max(m, Math.abs(got[name][i] - x)), 0);
      const rel = relL2(got[name], w);
      [worst, worstAbs] = [Math.max(worst, rel), Math.max(worstAbs, abs)];
      expect(abs, name).toBeLessThan(1e-6);
      expect(rel, name).toBeLessThan(1e-6);
    }
    console.log(`rewritten vs unrewritten step (cpu): loss ${got.loss[0]} vs ${want.loss[0]}, worst |Δ| ${worstAbs.toExponential(2)}, worst relative L2 ${worst.toExponential(2)}`);
  });
});
