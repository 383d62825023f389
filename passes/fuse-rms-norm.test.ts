import { describe, expect, it } from 'vitest';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { DataType } from '../src/onnx/schema.js';
import { fuseRmsNormPass } from './fuse-rms-norm.js';
import { buildModel, fuseAndCompare, type InputDecl } from './fusion-testing.js';

const F = DataType.FLOAT;
const H = DataType.FLOAT16;
const D = 8;
const X: InputDecl = { name: 'x', elem: F, shape: ['B', 'S', D] };
const eps = (b: GraphBuilder) => b.constant(1e-6, { dtype: F, dims: [] });
const weight = (b: GraphBuilder, dtype = F) => b.constant(Array.from({ length: D }, (_, i) => 1 + 0.1 * Math.sin(i + 1)), { dims: [D], dtype });
const axes = (b: GraphBuilder, a = -1) => b.constant([a]);
const mean = (b: GraphBuilder, sq: Value, a = -1) => b.op.ReduceMean(sq, axes(b, a), { keepdims: 1 });
const pow2 = (b: GraphBuilder, x: Value) => b.op.Pow(x, b.constant(2, { dtype: F, dims: [] }));

/** The fixture's form: Mul(w, Mul(x, Reciprocal(Sqrt(Add(ReduceMean(Pow(x, 2)), eps))))). */
function exported(b: GraphBuilder, x: Value, w = weight(b)): Value {
  const rstd = b.op.Reciprocal(b.op.Sqrt(b.op.Add(mean(b, pow2(b, x)), eps(b))));
  return b.op.Mul(w, b.op.Mul(x, rstd));
}

/** Cast(x, float) -> ... -> Cast(., float) -> Mul(w, .): HF's casts in an fp32 model. */
function castsFp32(b: GraphBuilder, x: Value): Value {
  const xs = b.op.Cast(x, { to: F });
  const rstd = b.op.Reciprocal(b.op.Sqrt(b.op.Add(mean(b, pow2(b, xs)), eps(b))));
  return b.op.Mul(weight(b), b.op.Cast(b.op.Mul(xs, rstd), { to: F }));
}

describe('fuse-rms-norm', () => {
  it('fuses every variant into ai.ortfuse.RMSNorm below opset 23, numerics as before', async () => {
    const m = buildModel([X], (b, x) => {
      const r = b.op.Relu(x);
      const t = b.op.Tanh(x);
      const s = b.op.Sin(x);
      return [
        // Pow -> ReduceMean(axes input) -> Add -> Sqrt -> Reciprocal -> Mul(x, .) -> Mul(w, .)
        exported(b, x),
        // Mul(x, x) -> ... -> Div(1, .) -> Mul(., x) -> Mul(., w), Add(eps, mean): all commuted
        b.op.Mul(b.op.Mul(b.op.Div(b.constant(1, { dtype: F, dims: [] }), b.op.Sqrt(b.op.Add(eps(b), mean(b, b.op.Mul(r, r))))), r), weight(b)),
        // Div(x, Sqrt(...)) -> Mul(w, .), positive last axis 2
        b.op.Mul(weight(b), b.op.Div(t, b.op.Sqrt(b.op.Add(mean(b, pow2(b, t), 2), eps(b))))),
        // Cast(x, float) -> ... -> Cast(., float) -> Mul(w, .)
        castsFp32(b, s),
      ];
    });
    const r = await fuseAndCompare(m, fuseRmsNormPass);
    expect(r.problems).toEqual([]);
    expect(r.result.counts).toEqual({ 'fuse-rms-norm': 4 });
    expect(r.ops).toMatchObject({ RMSNorm: 4, Relu: 1, Tanh: 1, Sin: 1 });
    for (const op of ['Pow', 'ReduceMean', 'Sqrt', 'Reciprocal', 'Div', 'Mul', 'Add']) expect(r.ops[op], op).toBeUndefined();
    expect(r.ops.Cast).toBeUndefined();
    expect(m.graph.nodes.filter((n) => n.opType === 'RMSNorm').map((n) => [n.domain, n.attrFloat('epsilon'), n.attrInt('stash_type')]))
      .toEqual(Array(4).fill(['ai.ortfuse', Math.fround(1e-6), 1]));
    expect(r.second.modified).toBe(false);
    for (const e of r.errors) expect(e).toBeLessThan(1e-5);
  });

  it('takes ReduceMean axes as an attribute (opset 17)', async () => {
    const m = buildModel([X], (b, x) => {
      const rstd = b.op.Reciprocal(b.op.Sqrt(b.op.Add(b.op.ReduceMean(pow2(b, x), { axes: [-1] }), eps(b))));
      return [b.op.Mul(weight(b), b.op.Mul(x, rstd))];
    }, 17);
    const r = await fuseAndCompare(m, fuseRmsNormPass);
    expect(r.result.counts).toEqual({ 'fuse-rms-norm': 1 });
    expect(Object.keys(r.ops)).toEqual(['RMSNorm']);
    expect(r.errors[0]).toBeLessThan(1e-5);
  });

  it('fuses mixed precision (x.float() ... .to(float16), fp16 weight) into RMSNorm(x16, w16)', async () => {
    const m = buildModel([X], (b, x) => {
      const x16 = b.op.Cast(x, { to: H });
      const xs = b.op.Cast(x16, { to: F });
      const normed = b.op.Mul(xs, b.op.Reciprocal(b.op.Sqrt(b.op.Add(mean(b, pow2(b, xs)), eps(b)))));
      return [b.op.Cast(b.op.Mul(weight(b, H), b.op.Cast(normed, { to: H })), { to: F })];
    });
    const r = await fuseAndCompare(m, fuseRmsNormPass);
    expect(r.result.counts).toEqual({ 'fuse-rms-norm': 1 });
    expect(r.ops).toEqual({ Cast: 2, RMSNorm: 1 });
    const n = m.graph.nodes.find((k) => k.opType === 'RMSNorm')!;
    expect(n.inputs[0]!.producer!.opType).toBe('Cast'); // reads the float16 x
    expect(r.errors[0]).toBeLessThan(1e-5);
  });

  it('emits ONNX RMSNormalization-23 on opset 23', async () => {
    const m = buildModel([X], (b, x) => [exported(b, x)], 23);
    const r = await fuseAndCompare(m, fuseRmsNormPass);
    expect(r.result.counts).toEqual({ 'fuse-rms-norm': 1 });
    expect(r.ops).toEqual({ RMSNormalization: 1 });
    const n = m.graph.nodes[0];
    expect([n.domain, n.attrInt('axis'), n.attrInt('stash_type'), n.attrFloat('epsilon')]).toEqual(['', -1, 1, Math.fround(1e-6)]);
    expect(m.functions).toEqual([]);
    expect(r.errors[0]).toBeLessThan(1e-5);
  });

  it('leaves the near misses alone', async () => {
    const Y: InputDecl = { name: 'y', elem: F, shape: ['B', 'S', D] };
    const X2: InputDecl = { name: 'x2', elem: F, shape: [D, D] };
    const m = buildModel([X, Y, X2], (b, x, y, x2) => {
      const add = (v: Value) => b.op.Add(v, eps(b));
      const tail = (xv: Value, rstd: Value) => b.op.Mul(weight(b), b.op.Mul(xv, rstd));
      const rstdOf = (xv: Value) => b.op.Reciprocal(b.op.Sqrt(add(mean(b, pow2(b, xv)))));
      const shared = rstdOf(b.op.Exp(x));
      return [
        tail(x, b.op.Reciprocal(add(b.op.Sqrt(mean(b, pow2(b, x)))))), // eps outside the Sqrt
        tail(b.op.Relu(x), b.op.Reciprocal(b.op.Sqrt(add(mean(b, pow2(b, b.op.Relu(x)), 1))))), // mean over axis 1
        tail(y, rstdOf(b.op.Tanh(x))), // Mul by another tensor than the normalized one
        tail(x2, b.op.Reciprocal(b.op.Sqrt(add(b.op.ReduceMean(pow2(b, x2), axes(b), { keepdims: 0 }))))), // keepdims=0
        tail(b.op.Sin(x), b.op.Reciprocal(b.op.Sqrt(add(mean(b, b.op.Pow(b.op.Sin(x), b.constant(4, { dtype: F, dims: [] }))))))), // x^4
        tail(b.op.Exp(x), shared), shared, // rstd read outside the pattern
        b.op.Mul(y, b.op.Mul(b.op.Cos(x), rstdOf(b.op.Cos(x)))), // "weight" [B, S, D], not [D]
        exported(b, b.op.Abs(x)), // control: the real thing fuses
      ];
    });
    const before = m.graph.nodes.length;
    const r = await fuseAndCompare(m, fuseRmsNormPass);
    expect(r.problems).toEqual([]);
    expect(r.result).toEqual({ modified: true, counts: { 'fuse-rms-norm': 1 } });
    expect(m.graph.nodes.length).toBe(before - 7 + 1);
    expect(m.graph.nodes.find((n) => n.opType === 'RMSNorm')!.inputs[0]!.producer!.opType).toBe('Abs');
    expect(r.errors.slice(0, 8)).toEqual(Array(8).fill(0));
    expect(r.errors[8]).toBeLessThan(1e-5);
  });

  it('does not fuse a float16 computation without the upcast, nor a Cast back to another type', () => {
    const X16: InputDecl = { name: 'x', elem: H, shape: ['B', 'S', D] };
    const m = buildModel([X16], (b, x) => {
      const e16 = b.constant(1e-3, { dtype: H, dims: [] });
      const two = b.constant(2, { dtype: H, dims: [] });
      const rstd = b.op.Reciprocal(b.op.Sqrt(b.op.Add(b.op.ReduceMean(b.op.Pow(x, two), axes(b), { keepdims: 1 }), e16)));
      const xs = b.op.Cast(b.op.Relu(x), { to: F });
      const rstd32 = b.op.Reciprocal(b.op.Sqrt(b.op.Add(mean(b, pow2(b, xs)), eps(b))));
      return [
        b.op.Mul(weight(b, H), b.op.Mul(x, rstd)), // computed in float16
        b.op.Mul(weight(b, DataType.DOUBLE), b.op.Cast(b.op.Mul(xs, rstd32), { to: DataType.DOUBLE })), // cast to double, x is float16
      ];
    });
    const ctx = { explain: true, explanations: [], options: {} };
    expect(fuseRmsNormPass.run(m, ctx)).toEqual({ modified: false, counts: {} });
    expect(ctx.explanations[0]).toMatchObject({ rule: 'fuse-rms-norm' });
    expect(ctx.explanations[0].reason).toMatch(/float16|cast to/);
  });
});
