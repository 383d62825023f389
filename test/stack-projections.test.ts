/**
 * passes/stack-projections.ts: the Linear ops that project one input (a Qwen2 layer's q, k, v)
 * become one Linear over their stacked weights and a Split. On the tiny Qwen2's training step:
 * one Linear and one Split per layer where there were three Linears, the same parameters under the
 * same names, frozen weights left out of the stacks; on the webgpu backend the Concat, Split and
 * the gradient's Slices are glue (still 1 ORT segment), and the loss and every gradient equal the
 * unstacked step's (our kernels, and ORT-web running the copies), on the builder's tiny Qwen2 and on
 * a default-settings torch export; on the cpu backend the losses equal the unstacked run's.
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { batches, split } from '../src/data/batches.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadFile } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { newContext } from '../src/rewrite/pass.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { stackProjections } from '../passes/stack-projections.js';
import { expectSameGradients, gpuEnv } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const SHAPE = { batch: 2, seq: 32 };
const prep = (stack: boolean, extra: { trainable?: string[] } = {}) =>
  prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention: true, stackProjections: stack, target: 'webgpu', ...extra });
const count = (p: ReturnType<typeof prep>, op: string) => p.train.graph.nodes.filter((n) => n.opType === op).length;

describe('stack-projections on the tiny Qwen2 step', () => {
  it('q, k and v become one Linear and a Split per layer; the parameters stay, by name', () => {
    const [plain, stacked] = [prep(false), prep(true)];
    const L = TINY.num_hidden_layers;
    expect(count(plain, 'Linear')).toBe(4 * L);
    expect(count(stacked, 'Linear')).toBe(2 * L);
    expect(count(stacked, 'Split')).toBe(L);
    expect(count(stacked, 'LinearGrad')).toBe(2 * L);
    expect(stacked.parameters).toEqual(plain.parameters);
    expect(stacked.report!.passes.find((p) => p.name === 'stack-projections')!.counts).toEqual({ 'stack-projections': 2 * L });
    // Its Concat, Split and the weight gradients' Slices are glue: the step is still one ORT segment
    // (the host's), with the same ops as without the stacks.
    const hostOps = (p: ReturnType<typeof prep>) => {
      const s = splitStages(webgpuGraph(p.train, SHAPE), parseKernels('default'), FUSED_OPS)!;
      expect(s.segments).toHaveLength(1);
      return s.segments[0].graph.nodes.map((n) => n.opType).sort();
    };
    expect(hostOps(stacked)).toEqual(hostOps(plain));
  });

  it('a default-settings torch export (GQA): q, k and v stack in every layer, under the torch names', () => {
    const file = new URL('../models/fixtures/default/qwen2-default-gqa.onnx', import.meta.url).pathname;
    const p = prepareTraining(loadFile(file), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention: true, stackProjections: true, target: 'webgpu' });
    const splits = p.train.graph.nodes.filter((n) => n.opType === 'Split' && n.inputs[0]?.producer?.opType === 'Linear');
    const layers = new Set(p.parameters.filter((n) => /\.self_attn\.q_proj\.weight$/.test(n))).size;
    expect(layers).toBeGreaterThan(0);
    expect(splits).toHaveLength(layers);
    for (const s of splits) expect(s.inputs[0]!.producer!.inputs[1]!.producer!.inputs.map((v) => v!.name.replace(/^.*self_attn\./, ''))).toEqual(['q_proj.weight', 'k_proj.weight', 'v_proj.weight']);
  });

  it('stacks only weights that train (a frozen base with trained ones would get a weight gradient for nothing)', () => {
    const trainable = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.v_proj.bias'];
    const p = prep(true, { trainable });
    expect(p.report!.passes.find((x) => x.name === 'stack-projections')!.counts).toEqual({ 'stack-projections': 1 });
    const split0 = p.train.graph.nodes.filter((n) => n.opType === 'Split');
    expect(split0).toHaveLength(1);
    const linear = split0[0].inputs[0]!.producer!;
    expect(linear.inputs[1]!.producer!.inputs.map((v) => v!.name)).toEqual(['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.v_proj.weight']);
  });

  it('leaves alone a lone Linear, one with trans_b = 0, and groups that differ in bias', () => {
    const m = createModel({ opset: 20, opsets: { 'ai.ortfuse': 1 } });
    const b = new GraphBuilder(m.graph);
    const F = DataType.FLOAT;
    const x = b.input('x', F, [2, 3, 4]);
    const w = (name: string, dims: number[]) => b.initializer(name, Tensor.from(F, dims, new Array(dims[0] * dims[1]).fill(0.5)));
    const bias = (name: string, n: number) => b.initializer(name, Tensor.from(F, [n], new Array(n).fill(1)));
    const lin = (inputs: Parameters<typeof b.op.call>[1], attrs = {}) => b.op.call('Linear', inputs, attrs, { domain: 'ai.ortfuse' })[0];
    const ys = [lin([x, w('a', [5, 4]), bias('ab', 5)]), lin([x, w('c', [4, 4])], { trans_b: 0 }), lin([x, w('d', [3, 4])]), lin([x, w('e', [2, 4]), bias('eb', 2)])];
    ys.forEach((y, i) => b.output(y, `y${i}`));
    // a and e (bias) stack; d alone (no bias), c (trans_b 0) left; y0..y3 are graph outputs: nothing stacks.
    expect(stackProjections.run(m, newContext()).counts).toEqual({});
    const m2 = createModel({ opset: 20, opsets: { 'ai.ortfuse': 1 } });
    const b2 = new GraphBuilder(m2.graph);
    const x2 = b2.input('x', F, [2, 3, 4]);
    const w2 = (name: string, n: number) => b2.initializer(name, Tensor.from(F, [n, 4], new Array(n * 4).fill(0.5)));
    const l2 = (inputs: Parameters<typeof b2.op.call>[1], attrs = {}) => b2.op.call('Linear', inputs, attrs, { domain: 'ai.ortfuse' })[0];
    const outs = [l2([x2, w2('a', 5), b2.initializer('ab', Tensor.from(F, [5], [1, 1, 1, 1, 1]))]), l2([x2, w2('d', 3)]), l2([x2, w2('e', 2), b2.initializer('eb', Tensor.from(F, [2], [1, 1]))]), l2([x2, b2.initializer('c', Tensor.from(F, [4, 4], new Array(16).fill(1)))], { trans_b: 0 })];
    outs.forEach((y, i) => b2.output(b2.op.Relu(y), `y${i}`));
    expect(stackProjections.run(m2, newContext()).counts).toEqual({ 'stack-projections': 1 });
    expect(m2.graph.nodes.filter((n) => n.opType === 'Linear').map((n) => n.inputs[1]!.producer?.opType ?? n.inputs[1]!.name)).toEqual(['Concat', 'd', 'c']);
  });
});

describe('stacked projections on the cpu backend (ORT runs the Linear bodies, Concat, Split, Slice)', () => {
  it('3 steps: the losses of the unstacked run', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 50_000);
    const opts: TrainOptions = { steps: 3, batch: 2, seq: 16, lr: 1e-3, seed: 5, fuse: true, fuseLinear: true, backend: 'cpu' };
    const plain = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, opts);
    const stacked = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...opts, stackProjections: true });
    console.log(`cpu losses, stacked vs plain: ${stacked.map((r) => r.loss.toFixed(6)).join(' ')} vs ${plain.map((r) => r.loss.toFixed(6)).join(' ')}`);
    stacked.forEach((r, i) => expect(Math.abs(r.loss - plain[i].loss)).toBeLessThan(1e-5));
    await expect(runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...opts, fuseLinear: false, stackProjections: true })).rejects.toThrow(/--stack-projections stacks the fused projections, which this run does not fuse \(--fuse-linear is off\)/);
  }, 120_000);
});

describe.skipIf(!env.ctx)('stacked projections on the webgpu step (dawn.node)', () => {
  it('loss and every gradient equal the unstacked step: our kernels, and ORT-web running the copies', async () => {
    const tok = await getTokenizer('bytes');
    const batch = batches(split(tok.encode(mobyDick().slice(0, 100_000)), 32).train, 2, 32, 5).next().value!;
    const plain = await stepGradients(prep(false), parseKernels('all'), SHAPE, batch);
    const stacked = await stepGradients(prep(true), parseKernels('all'), SHAPE, batch);
    const viaOrt = await stepGradients(prep(true), parseKernels('all,glue=ort'), SHAPE, batch);
    const worst = expectSameGradients(stacked, plain, 1e-5);
    const worstOrt = expectSameGradients(viaOrt, plain, 1e-5);
    console.log(`stacked vs plain: loss ${stacked.loss} vs ${plain.loss}, worst gradient relative L2 ${worst.toExponential(2)} (copies in ORT-web: ${worstOrt.toExponential(2)})`);
    expect(stacked.grads.size).toBe(plain.grads.size);
  });

  it('a default-settings torch export (GQA): loss and every gradient equal the unstacked step', async () => {
    const file = new URL('../models/fixtures/default/qwen2-default-gqa.onnx', import.meta.url).pathname;
    const tok = await getTokenizer('bytes');
    const batch = batches(split(tok.encode(mobyDick().slice(0, 50_000)), 16).train, 2, 16, 5).next().value!;
    const p = (stack: boolean) => prepareTraining(loadFile(file), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention: true, stackProjections: stack, target: 'webgpu' });
    const plain = await stepGradients(p(false), parseKernels('all'), { batch: 2, seq: 16 }, batch);
    const stacked = await stepGradients(p(true), parseKernels('all'), { batch: 2, seq: 16 }, batch);
    const worst = expectSameGradients(stacked, plain, 1e-5);
    console.log(`default export, stacked vs plain: loss ${stacked.loss} vs ${plain.loss}, worst gradient relative L2 ${worst.toExponential(2)}`);
  });
});
