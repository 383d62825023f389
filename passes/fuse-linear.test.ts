import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { ensureFunctions } from '../custom-ops/index.js';
import { randn, rng } from '../custom-ops/testing.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { createModel, checkModel, type Model, type Value } from '../src/ir/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadFile, saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { newContext } from '../src/rewrite/pass.js';
import { opCounts } from '../src/rewrite/testing.js';
import { fuseAndCompare } from './fusion-testing.js';
import { fuseLinearPass } from './fuse-linear.js';

const F = DataType.FLOAT;
const [K, N] = [8, 6];

/**
 * x [B, S, K], res [B, S, N], a weight fed as graph input w_in [N, K], and the parameters as
 * initializers: w [N, K] (torch layout), wt [K, N] (stored transposed), bias [N].
 */
function model(body: (b: GraphBuilder, x: Value, p: { w: Value; wt: Value; bias: Value; res: Value; wIn: Value }) => Value[]): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const r = rng(4);
  const x = b.input('x', F, ['B', 'S', K]);
  const res = b.input('res', F, ['B', 'S', N]);
  const p = {
    w: b.initializer('w', Tensor.from(F, [N, K], randn(r, N * K, 0.5))),
    wt: b.initializer('wt', Tensor.from(F, [K, N], randn(r, N * K, 0.5))),
    bias: b.initializer('bias', Tensor.from(F, [N], randn(r, N))),
    res,
    wIn: b.input('w_in', F, [N, K]),
  };
  body(b, x, p).forEach((y, i) => b.output(y, `y${i}`));
  return m;
}

const T = (b: GraphBuilder, w: Value) => b.op.Transpose(w, { perm: [1, 0] });

describe('fuse-linear', () => {
  it('fuses both weight layouts, with and without a bias; a residual Add stays; numerics as before', async () => {
    const m = model((b, x, { w, wt, bias, res }) => [
      b.op.Add(b.op.MatMul(x, T(b, w)), bias), // torch: x·Transpose(W) + b
      b.op.Add(bias, b.op.MatMul(x, wt)), // stored [K, N], bias first
      b.op.MatMul(x, T(b, w)), // no bias
      b.op.Add(b.op.MatMul(x, wt), res), // o_proj + residual: the Add is no bias
    ]);
    const r = await fuseAndCompare(m, fuseLinearPass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-linear': 4 });
    expect(r.ops).toEqual({ Linear: 4, Add: 1 });
    const nodes = m.graph.nodes.filter((n) => n.opType === 'Linear');
    expect(nodes.map((n) => [n.inputs.map((v) => v?.name), n.attrInt('trans_b', 1)])).toEqual([
      [['x', 'w', 'bias'], 1], [['x', 'wt', 'bias'], 0], [['x', 'w'], 1], [['x', 'wt'], 0],
    ]);
    expect(r.second.modified).toBe(false);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('leaves products of activations and non-parameter weights alone, and says why', async () => {
    const m = model((b, x, { res, wIn }) => [
      b.op.MatMul(res, b.op.Transpose(x, { perm: [0, 2, 1] })), // attention-like: both operands activations
      b.op.MatMul(x, T(b, wIn)), // a weight that is no initializer
    ]);
    const ctx = newContext({}, true);
    expect(fuseLinearPass.run(m, ctx)).toEqual({ modified: false, counts: {} });
    expect(ctx.explanations).toEqual([
      expect.objectContaining({ rule: 'fuse-linear', reason: "check: the weight 'w_in' is not an initializer (not a parameter) (value 'w_in')" }),
    ]);
  });
});

const layers = TINY.num_hidden_layers;
const fixture = JSON.parse(fs.readFileSync(new URL('../models/fixtures/qwen2-tiny.json', import.meta.url), 'utf8')) as { inputs: { input_ids: number[][]; labels: number[][] } };

/** The model's loss in onnxruntime-node (CPU, graph optimisations off) on the tiny fixture's inputs. */
async function loss(m: Model): Promise<number> {
  const t = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
  const s = await ort.InferenceSession.create(saveBytes(m), { graphOptimizationLevel: 'disabled' });
  try {
    return ((await s.run({ input_ids: t(fixture.inputs.input_ids), labels: t(fixture.inputs.labels) })).loss.data as Float32Array)[0];
  } finally {
    await s.release();
  }
}

/** The weights the Linear nodes read, by role: q, k, v, o, gate, up, down (the name's projection). */
const roles = (m: Model) => m.graph.nodes.filter((n) => n.opType === 'Linear').map((n) => /(q|k|v|o|gate|up|down)_proj/.exec(n.inputs[1]!.name)?.[1] ?? n.inputs[1]!.name);

describe('fuse-linear in the pipeline', () => {
  for (const mlp of [true, false])
    it(`builder's tiny Qwen2${mlp ? ' with the MLP fused' : ''}: ${mlp ? 4 : 7} Linear per layer (q, k, v with bias${mlp ? ', o' : ', o, gate, up, down'}); the lm_head stays FLCE's; same loss`, async () => {
      const m = buildQwen2(TINY, { seed: 5 });
      const want = await loss(m);
      const report = runPipeline(m, defaultPipeline({ mlp, linear: true }), { checkEachPass: true });
      expect(report.passes.find((p) => p.name === 'fuse-linear')!.counts).toEqual({ 'fuse-linear': (mlp ? 4 : 7) * layers });
      const c = opCounts(m);
      expect([c.Linear, c.SwiGLUMLP ?? 0, c.FusedLinearCrossEntropy]).toEqual([(mlp ? 4 : 7) * layers, mlp ? layers : 0, 1]);
      const per = roles(m).slice(0, mlp ? 4 : 7);
      expect(new Set(per)).toEqual(new Set(mlp ? ['q', 'k', 'v', 'o'] : ['q', 'k', 'v', 'o', 'gate', 'up', 'down']));
      const withBias = m.graph.nodes.filter((n) => n.opType === 'Linear' && n.inputs[2]).map((n) => /(q|k|v)_proj/.exec(n.inputs[1]!.name)?.[1]);
      expect(withBias.length).toBe(3 * layers);
      // The logits (kept: not a training pipeline) are still the lm_head's MatMul, on the FLCE weight.
      const flceWeight = m.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropy')!.inputs[1]!;
      expect(flceWeight.uses().map((u) => u.node.opType).filter((t) => t === 'Linear')).toEqual([]);
      ensureFunctions(m, 'cpu');
      expect(checkModel(m)).toEqual([]);
      expect(Math.abs((await loss(m)) - want) / want).toBeLessThan(1e-5);
    });

  it('with the attention fused too: the projections around each CausalAttention still become Linear; same loss', async () => {
    const m = buildQwen2(TINY, { seed: 5 });
    const want = await loss(m);
    runPipeline(m, defaultPipeline({ mlp: true, attention: true, linear: true }), { checkEachPass: true });
    const c = opCounts(m);
    // MatMuls left: RoPE's frequencies·positions (no parameter) and the logits (the lm_head's, FLCE's weight).
    expect([c.Linear, c.CausalAttention, c.SwiGLUMLP, c.MatMul ?? 0]).toEqual([4 * layers, layers, layers, 2]);
    ensureFunctions(m, 'cpu');
    expect(Math.abs((await loss(m)) - want) / want).toBeLessThan(1e-5);
  });

  it("a default-settings torch export (folded val_N weights, not adopted): the stored-transposed form, 4 per layer; same loss", async () => {
    const m = loadFile(new URL('../models/fixtures/default/qwen2-default-tied.onnx', import.meta.url).pathname);
    const fx = JSON.parse(fs.readFileSync(new URL('../models/fixtures/default/qwen2-default-tied.json', import.meta.url), 'utf8')) as { loss: number; config: { num_hidden_layers: number }; inputs: { input_ids: number[][]; labels: number[][] } };
    const run = async (x: Model) => {
      const t = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);
      const s = await ort.InferenceSession.create(saveBytes(x), { graphOptimizationLevel: 'disabled' });
      const outs = await s.run({ input_ids: t(fx.inputs.input_ids), labels: t(fx.inputs.labels) });
      const out = (outs[x.graph.outputs[0].name].data as Float32Array)[0]; // the export's first output is the loss
      await s.release();
      return out;
    };
    const L = fx.config.num_hidden_layers;
    const report = runPipeline(m, defaultPipeline({ mlp: true, linear: true }), { checkEachPass: true, explain: true });
    expect(report.passes.find((p) => p.name === 'fuse-linear')!.counts).toEqual({ 'fuse-linear': 4 * L });
    const linear = m.graph.nodes.filter((n) => n.opType === 'Linear');
    expect(linear.map((n) => n.attrInt('trans_b', 1))).toEqual(Array(4 * L).fill(0));
    expect(linear.filter((n) => n.inputs[2]).length).toBe(3 * L);
    expect([opCounts(m).SwiGLUMLP, opCounts(m).FusedLinearCrossEntropy]).toEqual([L, 1]);
    ensureFunctions(m, 'cpu');
    expect(Math.abs((await run(m)) - fx.loss) / fx.loss).toBeLessThan(1e-5);
  });
});
