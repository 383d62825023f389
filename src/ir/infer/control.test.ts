/** Loop/If subgraphs, model-local functions and the fused ops' rules and bodies. */
import { describe, expect, it } from 'vitest';
import { DataType } from '../../onnx/schema.js';
import { ensureFunctions } from '../../../custom-ops/functions.js';
import { createModel, GraphBuilder, makeAttr } from '../builder.js';
import { Graph, type Model, type ModelFunction, type Value } from '../graph.js';
import { formatType } from '../types.js';
import { inferShapes, isFullType } from './index.js';
import { compareWithOrt } from './test-helpers.js';

const F = DataType.FLOAT;
const I64 = DataType.INT64;
const shapeOf = (v: Value): string => formatType(v.type);

/** A subgraph whose formal inputs are untyped (as exporters often leave them). */
function subgraph(m: Model, inputs: string[]): { g: Graph; b: GraphBuilder; ins: Value[] } {
  const g = new Graph(m);
  g.name = m.freshName('body');
  const b = new GraphBuilder(g);
  const ins = inputs.map((n) => b.input(n, 0));
  for (const v of ins) v.type = undefined;
  return { g, b, ins };
}

describe('control flow and functions', () => {
  it('Loop: body outputs become node outputs; scan outputs get the trip count', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 3]);
    const { g: body, b: bb, ins } = subgraph(m, ['i', 'cond', 'acc']);
    // ORT requires typed Loop body inputs (scalar iteration count and condition); leave acc's shape to inference.
    [I64, DataType.BOOL, F].forEach((e, i) => (ins[i].type = { kind: 'tensor', elemType: e, shape: i < 2 ? [] : undefined }));
    const next = bb.op.Add(ins[2], x);
    const scan = bb.op.Unsqueeze(bb.op.ReduceSum(next, bb.constant([1]), { keepdims: 0 }), bb.constant([0]));
    body.outputs.push(bb.op.Identity(ins[1]), next, scan);
    const [final, scans] = b.op.call('Loop', [b.constant(4, { dims: [] }), null, x], { body }, { outputs: 2 });
    body.owner = final.producer;
    const r = await compareWithOrt(m);
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(final)).toBe('FLOAT[2,3]');
    expect(shapeOf(scans)).toBe('FLOAT[4,1,2]');
    expect(shapeOf(ins[0])).toBe('INT64[]');
    expect(shapeOf(ins[2])).toBe('FLOAT[2,3]');
    expect(shapeOf(scan)).toBe('FLOAT[1,2]');
  });

  it('Loop: a carried value that grows gets unknown dims, not its initial shape', () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 3]);
    const { g: body, b: bb, ins } = subgraph(m, ['i', 'cond', 'acc', 'fixed']);
    const grown = bb.op.Concat(ins[2], x, { axis: 0 });
    const same = bb.op.Add(ins[3], x);
    body.outputs.push(bb.op.Identity(ins[1]), grown, same);
    const [final, kept] = b.op.call('Loop', [b.constant(4, { dims: [] }), null, x, x], { body }, { outputs: 2 });
    body.owner = final.producer;
    const report = inferShapes(m);
    expect(report.conflicts).toEqual([]);
    expect([final, ins[2], grown].map(shapeOf)).toEqual(['FLOAT[?,3]', 'FLOAT[?,3]', 'FLOAT[?,3]']);
    expect([kept, ins[3], same].map(shapeOf)).toEqual(['FLOAT[2,3]', 'FLOAT[2,3]', 'FLOAT[2,3]']);
  });

  it('If: outputs join both branches', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 6]);
    const c = b.input('c', DataType.BOOL, []);
    const th = subgraph(m, []);
    th.g.outputs.push(th.b.op.Relu(x), th.b.op.Reshape(x, th.b.constant([0, 2, 3])));
    const el = subgraph(m, []);
    el.g.outputs.push(el.b.op.Neg(x), el.b.op.Reshape(x, el.b.constant([0, 3, 2])));
    const [same, differ] = b.op.call('If', [c], { then_branch: th.g, else_branch: el.g }, { outputs: 2 });
    th.g.owner = el.g.owner = same.producer;
    const r = await compareWithOrt(m, { bindings: { B: 2 }, only: [same] });
    expect(r.mismatches).toEqual([]);
    expect(shapeOf(same)).toBe('FLOAT[B,6]');
    expect(shapeOf(differ)).toBe('FLOAT[B,?,?]');
  });

  it('model-local functions: per-call-site types, attribute references, joined body types', async () => {
    const m = createModel({ opsets: { 'test.fn': 1 } });
    const { g: body, b: fb, ins } = subgraph(m, ['x']);
    const sq = fb.op.Mul(ins[0], ins[0]);
    const keep = { ...makeAttr('keepdims', 1), refAttrName: 'keep' };
    const red = fb.op.ReduceSum(sq, fb.op.Constant({ value_ints: [-1] }), { keepdims: keep });
    body.outputs.push(red, sq);
    const fn: ModelFunction = {
      domain: 'test.fn', name: 'SumSq', attributeNames: ['keep'], attributeProtos: [],
      opsetImports: new Map([['', 20]]), body, extra: {},
    };
    m.functions.push(fn);
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 'S', 8]);
    const y = b.input('y', F, ['B', 'S', 8]);
    const [r1, s1] = b.op.call('SumSq', [x], { keep: 1 }, { domain: 'test.fn', outputs: 2 });
    const [r2] = b.op.call('SumSq', [b.op.Relu(y)], { keep: 0 }, { domain: 'test.fn', outputs: 2 });
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 3 } });
    expect(r.mismatches).toEqual([]);
    expect(r.report.unknownOps).toEqual([]);
    expect([r1, s1, r2].map(shapeOf)).toEqual(['FLOAT[B,S,1]', 'FLOAT[B,S,8]', 'FLOAT[B,S]']);
    expect(shapeOf(sq)).toBe('FLOAT[B,S,8]');
    expect(shapeOf(red)).toBe('FLOAT[?]'); // rank differs between the call sites
  });

  it('fused ops: table rules type the calls; their portable bodies (incl. the linear-CE Loop) get typed too', async () => {
    const m = createModel({ opsets: { 'ai.ortfuse': 1 } });
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 'S', 16]);
    const labels = b.input('labels', I64, ['B', 'S']);
    const w = b.constant(new Array(16).fill(1), { dtype: F });
    const call = (op: string, inputs: (Value | null)[], attrs = {}) => b.op.call(op, inputs, attrs, { domain: 'ai.ortfuse' })[0];
    const h = call('RMSNorm', [x, w], { epsilon: 1e-6 });
    const act = call('SwiGLU', [h, h]);
    const q = b.op.Transpose(b.op.Reshape(act, b.constant([0, 0, 2, 8])), { perm: [0, 2, 1, 3] });
    const cos = b.input('cos', F, [1, 1, 'S', 8]);
    const rot = call('RoPE', [q, cos, cos]);
    const flat = b.op.Reshape(act, b.constant([-1, 16]));
    const lm = b.constant(new Array(10 * 16).fill(0.01), { dtype: F, dims: [10, 16] });
    const loss = call('FusedLinearCrossEntropy', [flat, lm, null, b.op.Reshape(labels, b.constant([-1]))]);
    ensureFunctions(m, 'cpu');
    const r = await compareWithOrt(m, { bindings: { B: 2, S: 4 } });
    expect(r.mismatches).toEqual([]);
    expect(r.report.conflicts.map((c) => c.message)).toEqual([]);
    expect(r.report.failures.map((f) => f.message)).toEqual([]);
    expect([h, act, rot, flat, loss].map(shapeOf)).toEqual(['FLOAT[B,S,16]', 'FLOAT[B,S,16]', 'FLOAT[B,2,S,8]', 'FLOAT[B*S,16]', 'FLOAT[]']);
    const untyped = m.functions.flatMap((f) => [...f.body.allNodes()].flatMap((n) => n.outputs)).filter((v) => v.name && !v.tensorType?.elemType);
    expect(untyped.map((v) => v.name)).toEqual([]);
    expect(m.functions.length).toBe(4);
    expect(m.graph.nodes.every((n) => n.outputs.every((o) => isFullType(o.type)))).toBe(true);
  });
});
