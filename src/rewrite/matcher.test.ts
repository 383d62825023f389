import { describe, expect, it } from 'vitest';
import { checkModel, createModel, Graph, GraphBuilder, Value } from '../ir/index.js';
import { DataType } from '../onnx/schema.js';
import { Tensor } from '../ir/tensor.js';
import { newContext } from './pass.js';
import { c, named, opt, or, outputs, p, shared, v } from './pattern.js';
import { defineRule, no, ok, rulePass, type Rule } from './rule.js';
import { maxAbsDiff, opCounts, randomFeeds, runOrt } from './testing.js';

const F = DataType.FLOAT;

/** A model with input x [B, 8] built by `body`, whose returned values become outputs. */
function model(body: (b: GraphBuilder, x: Value) => Value[]) {
  const m = createModel();
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', F, ['B', 8]);
  body(b, x).forEach((y, i) => b.output(y, `y${i}`));
  return m;
}

// x * sigmoid(x) -> x / (1 + exp(-x)) (stock ops, so ORT can check numerics)
const x = v('x');
const silu = defineRule({
  name: 'test-silu',
  pattern: p.Mul(x, p.Sigmoid(x)),
  rewrite: (b, m) => b.op.Div(m.values.x, b.op.Add(b.op.Exp(b.op.Neg(m.values.x)), b.constant(1, { dtype: F, dims: [] }))),
});

function run(m: ReturnType<typeof model>, rules: Rule<any>[], explain = false) {
  const ctx = newContext({}, explain);
  const r = rulePass('test', rules).run(m, ctx);
  expect(checkModel(m)).toEqual([]);
  return { ...r, explanations: ctx.explanations };
}

describe('matcher', () => {
  it('matches commuted operands with one rule, and numerics hold', async () => {
    const m = model((b, x) => {
      const r = b.op.Relu(x);
      return [b.op.Mul(x, b.op.Sigmoid(x)), b.op.Mul(b.op.Sigmoid(r), r)];
    });
    const feeds = randomFeeds(m, 7);
    const before = await runOrt(m, feeds);
    const r = run(m, [silu]);
    expect(r).toMatchObject({ modified: true, counts: { 'test-silu': 2 } });
    expect(opCounts(m)).toEqual({ Relu: 1, Neg: 2, Exp: 2, Add: 2, Div: 2 });
    expect(m.graph.nodes.filter((n) => n.opType === 'Div').every((n) => n.extra.metadata_props?.[0].value === 'test-silu')).toBe(true);
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['y0', 'y1']);
    const after = await runOrt(m, feeds);
    after.forEach((t, i) => expect(maxAbsDiff(t, before[i])).toBeLessThan(1e-6));
    // A second run changes nothing.
    expect(run(m, [silu])).toMatchObject({ modified: false, counts: {} });
  });

  it('keeps captures consistent: Mul(x, Sigmoid(y)) is no match', () => {
    const m = model((b, x) => [b.op.Mul(x, b.op.Sigmoid(b.op.Relu(x)))]);
    const r = run(m, [silu], true);
    expect(r.modified).toBe(false);
    expect(r.explanations[0].reason).toMatch(/'x' is already/);
  });

  it('tries alternatives and optional nodes', () => {
    const act = or([p.Sigmoid(x), p.HardSigmoid(x)]);
    const rule = defineRule({
      name: 'test-alt',
      pattern: p.Mul(opt(p.Cast(x, { to: F })), act),
      rewrite: (b, m) => b.op.Identity(m.values.x),
    });
    const m = model((b, x) => {
      const xd = b.op.Cast(x, { to: DataType.DOUBLE });
      return [
        b.op.Mul(x, b.op.Sigmoid(x)), // no Cast, Sigmoid
        b.op.Mul(b.op.HardSigmoid(xd), b.op.Cast(xd, { to: F })), // Cast, HardSigmoid, commuted
        b.op.Mul(b.op.Cast(xd, { to: DataType.FLOAT16 }), b.op.Tanh(xd)), // wrong Cast target, Tanh
      ];
    });
    const r = run(m, [rule]);
    expect(r.counts).toEqual({ 'test-alt': 2 });
    expect(opCounts(m).Mul).toBe(1);
  });

  it('matches absent optional inputs with the anonymous wildcard only', () => {
    const loose = defineRule({ name: 'test-slice', pattern: p.Slice(x, c([0]), v(), v(), v()), rewrite: (b, m) => b.op.Identity(m.values.x) });
    const strict = defineRule({ name: 'test-slice3', pattern: p.Slice(x, c([0]), v()), rewrite: (b, m) => b.op.Identity(m.values.x) });
    const m = model((b, x) => {
      const [s, e] = [b.constant([0]), b.constant([4])];
      return [b.op.Slice(x, s, e), b.op.Slice(x, s, e, b.constant([1]), b.constant([1]))];
    });
    expect(run(m, [strict], true).counts).toEqual({ 'test-slice3': 1 });
    const r = run(m, [strict], true);
    expect(r.explanations[0].reason).toMatch(/Slice at node '.*' has 5 inputs, the pattern expects 3/);
    expect(run(m, [loose]).counts).toEqual({ 'test-slice': 1 });
    expect(opCounts(m)).toEqual({ Identity: 2 });
  });

  it('does not fuse when an intermediate value has another reader (unless shared)', () => {
    const m = model((b, x) => {
      const s = b.op.Sigmoid(x);
      return [b.op.Mul(x, s), b.op.Relu(s)];
    });
    const r = run(m, [silu], true);
    expect(r.modified).toBe(false);
    expect(r.explanations[0]).toMatchObject({ rule: 'test-silu', matched: 2, total: 2 });
    expect(r.explanations[0].reason).toMatch(/also read by node '.*' \(Relu\) outside the match/);
    // With shared(), the fusion happens and the Sigmoid stays for its other reader.
    const sharedRule = { ...silu, pattern: p.Mul(x, shared(p.Sigmoid(x))) };
    expect(run(m, [sharedRule]).counts).toEqual({ 'test-silu': 1 });
    expect(opCounts(m)).toMatchObject({ Sigmoid: 1, Relu: 1, Div: 1 });
  });

  it('checks attributes, constants and domains', () => {
    const rule = defineRule({
      name: 'test-mean-sq',
      pattern: p.ReduceMean(p.Pow(x, c(2)), { axes: [-1], keepdims: (k) => (k ?? 1) === 1 }),
      rewrite: (b, m) => b.op.call('MeanSquare', [m.values.x], {}, { domain: 'ai.ortfuse' })[0],
    });
    const m = model((b, x) => {
      const two = b.op.Constant({ value: Tensor.from(F, [], [2]) });
      return [
        b.op.ReduceMean(b.op.Pow(x, b.constant(2, { dtype: F, dims: [] })), { axes: [-1] }), // initializer 2: fuses
        b.op.ReduceMean(b.op.Pow(x, two), { axes: [-1], keepdims: 1 }), // Constant node 2: fuses
        b.op.ReduceMean(b.op.Pow(x, b.constant(3, { dtype: F, dims: [] })), { axes: [-1] }), // exponent 3
        b.op.ReduceMean(b.op.Pow(x, b.constant(2, { dtype: F, dims: [] })), { axes: [1, 0] }), // wrong axes
        b.op.ReduceMean(b.op.Pow(x, b.constant(2, { dtype: F, dims: [] })), { axes: [-1], keepdims: 0 }), // keepdims 0
      ];
    });
    const r = run(m, [rule]);
    expect(r.counts).toEqual({ 'test-mean-sq': 2 });
    expect(m.opsetImports.get('ai.ortfuse')).toBe(1);
    expect(opCounts(m)).toMatchObject({ MeanSquare: 2, ReduceMean: 3, Pow: 3 });
    // Domain: an ai.ortfuse pattern node does not match a default-domain node of the same name.
    const dom = defineRule({ name: 'test-dom', pattern: p.call('MeanSquare', [x], {}, { domain: 'com.other' })[0], rewrite: (b, m) => b.op.Identity(m.values.x) });
    expect(run(m, [dom]).modified).toBe(false);
  });

  it('reports attribute mismatches and near misses in --explain', () => {
    const rule = defineRule({ name: 'test-mean', pattern: p.ReduceMean(p.Mul(x, x), { axes: [-1] }), rewrite: (b, m) => b.op.Identity(m.values.x) });
    const m = model((b, x) => [b.op.ReduceMean(b.op.Mul(x, x), { axes: [0] }), b.op.Mul(x, b.op.Tanh(x))]);
    const r = run(m, [rule, silu], true);
    expect(r.modified).toBe(false);
    expect(r.explanations).toHaveLength(2);
    expect(r.explanations[0]).toMatchObject({ rule: 'test-mean', matched: 0, total: 2 });
    expect(r.explanations[0].reason).toMatch(/ReduceMean at node '.*': attribute axes is \[0\], expected \[-1\]/);
    const tanh = m.graph.nodes.find((n) => n.opType === 'Tanh')!;
    expect(r.explanations[1]).toMatchObject({ rule: 'test-silu', matched: 1, total: 2 });
    expect(r.explanations[1].reason).toBe(`Mul input 1: expected Sigmoid, found Tanh at node '${tanh.name}'`);
    expect(r.explanations[1].anchor).toBe(m.graph.nodes.find((n) => n.opType === 'Mul' && n.inputs[1] === tanh.outputs[0])!.name);
  });

  it("reports the check's reason and the absence of candidates", () => {
    const rule = defineRule({
      name: 'test-check',
      pattern: p.Mul(x, p.Sigmoid(x)),
      check: (m) => (m.values.x.tensorType?.shape?.[1] === 16 ? ok({ d: 16 }) : no('hidden size is not 16', m.values.x)),
      rewrite: (b, m, facts) => b.op.Identity(m.values.x, { d: facts.d } as never),
    });
    const none = defineRule({ name: 'test-none', pattern: p.Softmax(x), rewrite: (b, m) => m.values.x });
    const m = model((b, x) => [b.op.Mul(x, b.op.Sigmoid(x))]);
    const r = run(m, [rule, none], true);
    expect(r.explanations).toEqual([
      { rule: 'test-check', matched: 2, total: 2, anchor: m.graph.nodes[1].name, reason: "check: hidden size is not 16 (value 'x')" },
      { rule: 'test-none', matched: 0, total: 1, reason: 'no Softmax node in the model' },
    ]);
  });

  it('replaces several outputs, and rewrites inside subgraphs and function bodies (not ai.ortfuse ones)', () => {
    // Split pattern with two outputs: Relu(Split(x)[0]), Relu(Split(x)[1]) -> Split(Relu(x))
    const [a, bb] = p.call('Split', [x], { axis: -1 }, { outputs: 2 });
    const two = defineRule({
      name: 'test-two',
      pattern: outputs(named('r0', p.Relu(a)), p.Relu(bb)),
      rewrite: (b, m) => b.op.call('Split', [b.op.Relu(m.values.x)], { axis: -1 }, { outputs: 2 }),
    });
    const m = model((b, x) => {
      const [s0, s1] = b.op.call('Split', [x], { axis: -1 }, { outputs: 2 });
      return [b.op.Relu(s0), b.op.Relu(s1)];
    });
    expect(run(m, [two]).counts).toEqual({ 'test-two': 1 });
    expect(opCounts(m)).toEqual({ Relu: 1, Split: 1 });
    expect(m.graph.outputs.map((o) => o.producer?.opType)).toEqual(['Split', 'Split']);

    // If subgraph and two function bodies, one in our own domain (left alone).
    const fm = model((b, x) => {
      const sub = new GraphBuilder(new Graph(b.graph.model));
      sub.graph.name = 'then';
      sub.output(sub.op.Mul(x, sub.op.Sigmoid(x)));
      const els = new GraphBuilder(new Graph(b.graph.model));
      els.graph.name = 'else';
      els.output(els.op.Relu(x));
      const cond = b.constant(1, { dtype: DataType.BOOL, dims: [] });
      const y = b.op.If(cond, { then_branch: sub.graph, else_branch: els.graph });
      sub.graph.owner = els.graph.owner = y.producer;
      return [y];
    });
    for (const domain of ['my.domain', 'ai.ortfuse']) {
      const body = new GraphBuilder(new Graph(fm));
      const fx = new Value(body.graph, 'fx');
      body.graph.inputs.push(fx);
      body.graph.outputs.push(body.op.Mul(fx, body.op.Sigmoid(fx)));
      fm.functions.push({ domain, name: 'F', attributeNames: [], attributeProtos: [], opsetImports: new Map([['', 20]]), body: body.graph, extra: {} });
    }
    expect(run(fm, [silu]).counts).toEqual({ 'test-silu': 2 });
    const ifNode = fm.graph.nodes.find((n) => n.opType === 'If')!;
    expect(ifNode.subgraphs()[0].nodes.map((n) => n.opType)).toEqual(['Neg', 'Exp', 'Add', 'Div']);
    expect(fm.functions[0].body.nodes.map((n) => n.opType)).toEqual(['Neg', 'Exp', 'Constant', 'Add', 'Div']);
    expect(fm.functions[0].body.initializers).toEqual([]);
    expect(fm.functions[1].body.nodes.map((n) => n.opType)).toEqual(['Sigmoid', 'Mul']);
  });

  it('runs well under a second on a 5k-node graph (100 rewrites)', () => {
    const m = model((b, x) => {
      let h = x;
      for (let i = 0; i < 700; i++) {
        const g = b.op.Mul(h, i % 7 ? b.op.Tanh(h) : b.op.Sigmoid(h)); // 100 matches, 600 near misses
        h = b.op.Add(b.op.Mul(g, b.op.Tanh(h)), b.op.ReduceMean(b.op.Mul(h, h), { axes: [-1] }));
        h = b.op.Relu(h);
      }
      return [h];
    });
    expect(m.graph.nodes.length).toBeGreaterThan(4900);
    const mean = defineRule({ name: 'test-mean', pattern: p.ReduceMean(p.Pow(x, c(2)), { axes: [-1] }), rewrite: (b, m) => m.values.x });
    const t0 = performance.now();
    const r = rulePass('test', [mean, silu]).run(m, newContext());
    const ms = performance.now() - t0;
    expect(checkModel(m)).toEqual([]);
    expect(r.counts).toEqual({ 'test-silu': 100 });
    expect(ms).toBeLessThan(1000);
  });
});
