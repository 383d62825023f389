/**
 * FusedLinearCrossEntropyWithGrad's optional input grad_scale in the portable bodies (cpu Loop,
 * webgpu unrolled; precision fp32 and f16) on onnxruntime-node: a power of two 2^k gives exactly
 * 2^k × the gradients of the op without the input (bit for bit: it joins the scalar factor, and
 * scaling by 2^k commutes with every rounding), the loss unchanged; grad_scale 3 matches the float64
 * reference × 3; the body with it has one node more, a scalar Mul; bad shapes and types fail clearly.
 */
import { describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { FUSED_INFER_RULES } from '../registry.js';
import { ensureFunction } from '../functions.js';
import { f32, i64, randn, relErr, rng, runOrt } from '../testing.js';
import { checkModel, createModel, GraphBuilder, type Model } from '../../src/ir/index.js';
import { inferShapes } from '../../src/ir/infer/index.js';
import { DataType } from '../../src/onnx/schema.js';
import { validateNode, type Target } from '../../src/fused/types.js';
import { fusedLinearCrossEntropyWithGrad } from './with-grad.js';
import { linearCrossEntropyGradRef } from './reference.js';

const F = DataType.FLOAT;
const TARGETS: Target[] = ['cpu', 'webgpu'];
const PRECISIONS = ['fp32', 'f16'] as const;

interface Case { n: number; h: number; v: number; bias: boolean; reduction: 'mean' | 'sum'; eps: number; chunk?: number; chunks?: number }

const CASES: [string, Case][] = [
  ['mean, bias, ignored rows, N=37 in chunks of 8', { n: 37, h: 24, v: 300, bias: true, reduction: 'mean', eps: 0, chunk: 8, chunks: 3 }],
  ['sum, label smoothing 0.1, no bias', { n: 37, h: 24, v: 300, bias: false, reduction: 'sum', eps: 0.1 }],
];

/** The op as a one-node model with its body for `target`; `scaled`: with the input grad_scale (float32 []). */
function model(c: Case, target: Target, precision: string, scaled: boolean, scaleShape: number[] = []): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const ins = [b.input('hidden', F, ['N', c.h]), b.input('weight', F, [c.v, c.h]), c.bias ? b.input('bias', F, [c.v]) : null, b.input('labels', DataType.INT64, ['N'])];
  if (scaled) ins.push(b.input('grad_scale', F, scaleShape));
  const outs = b.op.call('FusedLinearCrossEntropyWithGrad', ins, {
    reduction: c.reduction, label_smoothing: { float: c.eps }, chunk_size: c.chunk, num_chunks: c.chunks, precision,
  }, { domain: 'ai.ortfuse', outputs: 4 });
  ['loss', 'dh', 'dw', 'db'].forEach((name, i) => b.output(outs[i], name));
  ensureFunction(m, fusedLinearCrossEntropyWithGrad, target);
  inferShapes(m, { rules: FUSED_INFER_RULES });
  expect(checkModel(m).map((p) => p.message)).toEqual([]);
  return m;
}

function data(c: Case, seed: number) {
  const r = rng(seed);
  const hidden = randn(r, c.n * c.h), weight = randn(r, c.v * c.h, 0.3), bias = randn(r, c.v);
  const labels = Array.from({ length: c.n }, (_, i) => (i % 5 === 2 ? -100 : Math.floor(r() * c.v)));
  const feeds: Record<string, ort.Tensor> = { hidden: f32(hidden, [c.n, c.h]), weight: f32(weight, [c.v, c.h]), labels: i64(labels, [c.n]) };
  if (c.bias) feeds.bias = f32(bias, [c.v]);
  return { feeds, x: { n: c.n, h: c.h, v: c.v, hidden, weight, bias: c.bias ? bias : undefined, labels } };
}

/** y is exactly s × x, element by element (s a power of two: no rounding). */
function expectScaled(what: string, y: Float32Array, x: Float32Array, s: number) {
  expect(y.length).toBe(x.length);
  expect(x.some((t) => t !== 0), `${what} is not all zero`).toBe(true);
  for (let i = 0; i < x.length; i++) if (y[i] !== s * x[i]) expect.fail(`${what}[${i}]: ${y[i]} is not ${s} × ${x[i]}`);
}

const GRADS = ['dh', 'dw', 'db'] as const;

describe('FusedLinearCrossEntropyWithGrad grad_scale in the portable bodies', () => {
  for (const target of TARGETS)
    for (const precision of PRECISIONS)
      it.each(CASES)(`${target}, ${precision}: %s — grad_scale 2^k gives exactly 2^k × the gradients, the loss unchanged`, async (_name, c) => {
        const { feeds } = data(c, c.n * 31 + c.v);
        const plain = await runOrt(model(c, target, precision, false), feeds);
        const m = model(c, target, precision, true);
        for (const s of [1, 2 ** 10, 2 ** -3]) {
          const out = await runOrt(m, { ...feeds, grad_scale: f32(Float32Array.of(s), []) });
          expect(out.loss.data[0], `loss at grad_scale ${s}`).toBe(plain.loss.data[0]);
          for (const k of GRADS) if (k !== 'db' || c.bias) expectScaled(`${k} at grad_scale ${s}`, out[k].data as Float32Array, plain[k].data as Float32Array, s);
        }
      });

  for (const target of TARGETS)
    it(`${target}, fp32: grad_scale 3 (shape [1]) is the float64 reference × 3`, async () => {
      const c = CASES[0][1];
      const { feeds, x } = data(c, 7);
      const out = await runOrt(model(c, target, 'fp32', true, [1]), { ...feeds, grad_scale: f32(Float32Array.of(3), [1]) });
      const ref = linearCrossEntropyGradRef(x, { reduction: c.reduction, labelSmoothing: c.eps }, 3);
      expect(relErr(out.dh.data as Float32Array, ref.dHidden)).toBeLessThan(1e-4);
      expect(relErr(out.dw.data as Float32Array, ref.dWeight)).toBeLessThan(1e-4);
      expect(relErr(out.db.data as Float32Array, ref.dBias)).toBeLessThan(1e-4);
    });

  it('the body with grad_scale is the body without it plus one Mul, which reads it (no Mul over a gradient)', () => {
    for (const target of TARGETS)
      for (const precision of PRECISIONS) {
        const c = CASES[0][1];
        const ops = (m: Model) => [...m.functions[0].body.allNodes()].map((n) => n.opType);
        const [without, withScale] = [model(c, target, precision, false), model(c, target, precision, true)];
        expect(without.functions[0].body.inputs).toHaveLength(4);
        const body = withScale.functions[0].body;
        expect(body.inputs.map((v) => v.name.split('.').pop())).toEqual(['hidden', 'weight', 'bias', 'labels', 'grad_scale']);
        const count = (xs: string[]) => xs.reduce((a, o) => a.set(o, (a.get(o) ?? 0) + 1), new Map<string, number>());
        const [a, b] = [count(ops(without)), count(ops(withScale))];
        expect(b.get('Mul'), `${target} ${precision}`).toBe(a.get('Mul')! + 1);
        b.set('Mul', b.get('Mul')! - 1);
        expect(b, `${target} ${precision}`).toEqual(a);
        const uses = body.inputs[4].uses();
        expect(uses.map((u) => u.node.opType)).toEqual(['Mul']);
        // Its other operand is k's scalar factor (1/#valid or 1), made by a Where.
        expect(uses[0].node.inputs[0]!.producer!.opType).toBe('Where');
      }
  });

  it('rejects a grad_scale that is not one float32 element, naming the node', () => {
    const c = CASES[0][1];
    const node = (elem: number, shape: number[]) => {
      const m = createModel({ opset: 20 });
      const b = new GraphBuilder(m.graph);
      const ins = [b.input('h', F, [c.n, c.h]), b.input('w', F, [c.v, c.h]), null, b.input('y', DataType.INT64, [c.n]), b.input('s', elem, shape)];
      b.op.call('FusedLinearCrossEntropyWithGrad', ins, {}, { domain: 'ai.ortfuse', outputs: 4, name: 'lce' });
      return m.graph.nodes[0];
    };
    const s = fusedLinearCrossEntropyWithGrad.schema;
    expect(() => validateNode(s, node(F, [2]))).toThrow("node 'lce' (ai.ortfuse::FusedLinearCrossEntropyWithGrad): input 'grad_scale' has shape [2], expected one element ([] or [1])");
    expect(() => validateNode(s, node(F, [1, 1]))).toThrow(/input 'grad_scale' has shape \[1,1\], expected one element/);
    expect(() => validateNode(s, node(DataType.FLOAT16, []))).toThrow(/input 'grad_scale' has element type FLOAT16, expected one of FLOAT/);
    expect(validateNode(s, node(F, []))[2].shape).toEqual([c.v, c.h]);
    expect(validateNode(s, node(F, [1]))[0].shape).toEqual([]);
  });

  it('one body serves every caller: callers that disagree on passing grad_scale fail, naming both', () => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const [h, w, y, s] = [b.input('h', F, [4, 8]), b.input('w', F, [10, 8]), b.input('y', DataType.INT64, [4]), b.input('s', F, [])];
    for (const [name, ins] of [['a', [h, w, null, y, s]], ['b', [h, w, null, y]]] as const) {
      const outs = b.op.call('FusedLinearCrossEntropyWithGrad', [...ins], {}, { domain: 'ai.ortfuse', outputs: 4, name });
      b.output(outs[0], `loss_${name}`);
    }
    expect(() => ensureFunction(m, fusedLinearCrossEntropyWithGrad, 'cpu')).toThrow(
      "FusedLinearCrossEntropyWithGrad: node 'a' (ai.ortfuse::FusedLinearCrossEntropyWithGrad) passes grad_scale and node 'b' (ai.ortfuse::FusedLinearCrossEntropyWithGrad) does not; one body serves them all");
  });
});
