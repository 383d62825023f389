/** Symbolic shapes: dims named by the exporter survive and combine; runtime shape chains are followed. */
import { describe, expect, it } from 'vitest';
import { DataType } from '../../onnx/schema.js';
import { createModel, GraphBuilder } from '../builder.js';
import type { Value } from '../graph.js';
import { formatType } from '../types.js';
import { inferShapes } from './index.js';
import { compareWithOrt } from './test-helpers.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const shapeOf = (v: Value): string => formatType(v.type);

function setup() {
  const m = createModel();
  return { m, b: new GraphBuilder(m.graph) };
}

describe('symbolic inference', () => {
  it('Reshape [B, S, 896] to [-1, 896] gives B*S, and back through 0 and -1', async () => {
    const { m, b } = setup();
    const x = b.input('x', F, ['B', 'S', 896]);
    const flat = b.op.Reshape(x, b.constant([-1, 896]));
    const heads = b.op.Reshape(x, b.constant([0, 0, 14, -1]));
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 3 } });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(flat)).toBe('FLOAT[B*S,896]');
    expect(shapeOf(heads)).toBe('FLOAT[B,S,14,64]');
  });

  it('label shift: labels[:, 1:], logits[:, :-1], and the Pad variant', async () => {
    const { m, b } = setup();
    const logits = b.input('logits', F, ['batch', 'seq', 32]);
    const labels = b.input('labels', I64, ['batch', 'seq']);
    const shifted = b.op.Slice(labels, b.constant([1]), b.constant([2 ** 62]), b.constant([1]));
    const head = b.op.Slice(logits, b.constant([0]), b.constant([-1]), b.constant([1]));
    const padded = b.op.Pad(labels, b.constant([0, 0, 0, 1]), b.constant(-100, { dims: [] }));
    const padShift = b.op.Slice(padded, b.constant([1]), b.constant([2 ** 62]), b.constant([1]));
    const loss = b.op.SoftmaxCrossEntropyLoss(b.op.Transpose(head, { perm: [0, 2, 1] }), shifted, { ignore_index: -100 });
    const r = await compareWithOrt(m, { bindings: { batch: 2, seq: 16 } });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(shifted)).toBe('INT64[batch,seq-1]');
    expect(shapeOf(head)).toBe('FLOAT[batch,seq-1,32]');
    expect(shapeOf(padded)).toBe('INT64[batch,seq+1]');
    expect(shapeOf(padShift)).toBe('INT64[batch,seq]');
    expect(shapeOf(loss)).toBe('FLOAT[]');
  });

  it('follows Shape -> Gather -> Unsqueeze -> Concat / Mul -> Reshape chains', async () => {
    const { m, b } = setup();
    const x = b.input('x', F, ['B', 'S', 896]);
    const sh = b.op.Shape(x);
    const bb = b.op.Unsqueeze(b.op.Gather(sh, b.constant(0, { dims: [] })), b.constant([0]));
    const ss = b.op.Unsqueeze(b.op.Gather(sh, b.constant(1, { dims: [] })), b.constant([0]));
    const target = b.op.Concat(bb, ss, b.constant([14, 64]), { axis: 0 });
    const heads = b.op.Reshape(x, target);
    const bs = b.op.Mul(bb, ss);
    const flat = b.op.Reshape(x, b.op.Concat(bs, b.op.Slice(sh, b.constant([-1]), b.constant([2 ** 62])), { axis: 0 }));
    const casted = b.op.Cast(b.op.Cast(sh, { to: DataType.INT32 }), { to: I64 });
    const mask = b.op.ConstantOfShape(casted, { value: undefined });
    const pos = b.op.Range(b.constant(0, { dims: [] }), b.op.Squeeze(ss, b.constant([0])), b.constant(1, { dims: [] }));
    const half = b.op.Div(b.op.Gather(sh, b.constant([2])), b.constant([2]));
    const split = b.op.Reshape(x, b.op.Concat(bb, ss, b.constant([2]), half, { axis: 0 }));
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 5 } });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(heads)).toBe('FLOAT[B,S,14,64]');
    expect(shapeOf(flat)).toBe('FLOAT[B*S,896]');
    expect(shapeOf(mask)).toBe('FLOAT[B,S,896]');
    expect(shapeOf(pos)).toBe('INT64[S]');
    expect(shapeOf(split)).toBe('FLOAT[B,S,2,448]');
  });

  it('broadcasts [B,1,S,S] with [1,1,S,S] and expands to a runtime shape', async () => {
    const { m, b } = setup();
    const mask = b.input('mask', F, ['B', 1, 'S', 'S']);
    const causal = b.input('causal', F, [1, 1, 'S', 'S']);
    const sum = b.op.Add(mask, causal);
    const x = b.input('x', F, ['B', 'S', 8]);
    const expanded = b.op.Expand(b.op.Unsqueeze(b.op.Shape(x), b.constant([0])), b.constant([3, 1]));
    const byShape = b.op.Expand(b.input('one', F, [1, 1, 8]), b.op.Shape(x));
    // torch-style Expand target: Where(Equal(shape, -1), 1, shape)
    const sh = b.op.Shape(x);
    const fixed = b.op.Where(b.op.Equal(sh, b.constant(-1, { dims: [] })), b.constant(1, { dims: [] }), sh);
    const viaWhere = b.op.Expand(b.input('one2', F, [1, 1, 1]), fixed);
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 4 } });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(sum)).toBe('FLOAT[B,1,S,S]');
    expect(shapeOf(expanded)).toBe('INT64[3,3]');
    expect(shapeOf(byShape)).toBe('FLOAT[B,S,8]');
    expect(shapeOf(viaWhere)).toBe('FLOAT[B,S,8]');
  });

  it('keeps declared names, refines unknown dims, and reports conflicts instead of throwing', () => {
    const { m, b } = setup();
    const x = b.input('x', F, ['batch', 'seq', 8]);
    const y = b.op.Relu(x);
    const z = b.op.Reshape(x, b.constant([-1, 8]));
    const w = b.op.Sigmoid(x);
    y.type = { kind: 'tensor', elemType: F, shape: ['s0', null, 8] };
    z.type = { kind: 'tensor', elemType: F, shape: [null, 4] };
    const declared = z.type;
    w.type = { kind: 'tensor', elemType: DataType.FLOAT16 };
    const report = inferShapes(m);
    expect(shapeOf(y)).toBe('FLOAT[s0,seq,8]');
    expect(z.type).toBe(declared);
    expect(w.type).toEqual({ kind: 'tensor', elemType: DataType.FLOAT16 });
    expect(report.conflicts.map((c) => c.message)).toEqual([
      expect.stringMatching(/'Reshape.*dim 1 is 4 vs 8/),
      expect.stringMatching(/'Sigmoid.*element type FLOAT16 vs FLOAT/),
    ]);
    // Idempotent: a second run changes nothing and reports the same conflicts.
    const again = inferShapes(m);
    expect(shapeOf(y)).toBe('FLOAT[s0,seq,8]');
    expect(again.conflicts.length).toBe(2);
  });

  it('leaves unknown ops untyped and survives malformed nodes', () => {
    const { m, b } = setup();
    const x = b.input('x', F, [2, 3]);
    const u = b.op.call('Mystery', [x], {}, { domain: 'com.example' })[0];
    const bad = b.op.Add(x, b.input('y', F, [4]));
    const after = b.op.Relu(u);
    const report = inferShapes(m);
    expect(u.type).toBeUndefined();
    expect(after.type).toBeUndefined();
    expect(bad.type).toBeUndefined();
    expect(report.unknownOps).toEqual(['com.example::Mystery']);
    expect(report.failures.map((f) => f.message)).toEqual([expect.stringMatching(/Add.*cannot broadcast 3 with 4/)]);
  });
});

describe('data propagation through float casts', () => {
  it('Range over a casted symbolic length, and integer vs float Div', async () => {
    const { m, b } = setup();
    const x = b.input('x', F, ['B', 'S', 6]);
    const s = b.op.Gather(b.op.Shape(x), b.constant(1, { dims: [] }));
    const pos = b.op.Range(b.constant(0, { dtype: F, dims: [] }), b.op.Cast(s, { to: F }), b.constant(1, { dtype: F, dims: [] }));
    const d = b.op.Gather(b.op.Shape(x), b.constant([2]));
    const intHalf = b.op.Div(d, b.constant([4]));
    const floatHalf = b.op.Cast(b.op.Div(b.op.Cast(d, { to: F }), b.constant([4], { dtype: F })), { to: I64 });
    const viaInt = b.op.ConstantOfShape(intHalf);
    const viaFloat = b.op.ConstantOfShape(b.op.Mul(floatHalf, b.constant([2])));
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 5 } });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(pos)).toBe('FLOAT[S]');
    expect(shapeOf(viaInt)).toBe('FLOAT[1]');
    expect(shapeOf(viaFloat)).toBe('FLOAT[2]');
  });
});

describe('rule registry', () => {
  it('uses a rule passed in options (domain::op) with known input values and attributes', () => {
    const { m, b } = setup();
    const x = b.input('x', F, ['B', 'S', 8]);
    const n = b.op.Gather(b.op.Shape(x), b.constant([0]));
    const y = b.op.call('Tile2', [x, n], { factor: 3 }, { domain: 'com.example' })[0];
    const report = inferShapes(m, {
      rules: {
        'com.example::Tile2': (_node, ctx) => {
          const s = ctx.shape(0)!;
          return [{ kind: 'tensor', elemType: ctx.elem(0)!, shape: [ctx.value(1)!.values[0], `${ctx.attrInt('factor')}*${s[1]}`, s[2]] }];
        },
      },
    });
    expect(report.unknownOps).toEqual([]);
    expect(shapeOf(y)).toBe('FLOAT[B,3*S,8]');
  });

  it('types string and list constants', () => {
    const { m, b } = setup();
    const s = b.op.Constant({ value_string: 'a' });
    const ss = b.op.Constant({ value_strings: ['a', 'b'] });
    inferShapes(m);
    expect([shapeOf(s), shapeOf(ss)]).toEqual(['STRING[]', 'STRING[2]']);
  });
});
