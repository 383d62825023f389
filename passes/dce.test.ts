import { describe, expect, it } from 'vitest';
import { createModel, Graph, GraphBuilder } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { dce } from './dce.js';

const F = DataType.FLOAT;

describe('dce', () => {
  it('removes dead nodes and initializers, keeps what subgraphs and graph inputs need', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, ['B', 4]);
    const w = b.constant([1, 2, 3, 4], { dtype: F, name: 'w' });
    const unused = b.constant([5, 6, 7, 8], { dtype: F, name: 'unused' });
    const overridable = b.constant([7], { dtype: F, name: 'overridable' });
    m.graph.inputs.push(overridable); // an initializer that is also a graph input: kept
    const outer = b.constant([0.5], { dtype: F, name: 'outer' }); // read only inside the If branch
    const deadOnlyInner = b.constant([9], { dtype: F, name: 'dead_inner' }); // read only by a dead inner node
    // Dead chain: Tanh -> Exp (Exp's output unread), and a dead Add of an initializer.
    b.op.Exp(b.op.Tanh(x));
    b.op.Add(x, unused);
    // If with a branch reading `outer`, and a dead node inside reading `dead_inner`.
    const then = new GraphBuilder(new Graph(m));
    then.graph.name = 'then';
    then.op.Neg(deadOnlyInner);
    then.output(then.op.Mul(x, outer));
    const els = new GraphBuilder(new Graph(m));
    els.graph.name = 'else';
    els.output(els.op.Relu(x));
    const y = b.op.If(b.constant(1, { dtype: DataType.BOOL, dims: [] }), { then_branch: then.graph, else_branch: els.graph });
    then.graph.owner = els.graph.owner = y.producer;
    b.output(b.op.Mul(y, w), 'y');

    const r = await checkPass(m, dce);
    expect(r.problems).toEqual([]);
    expect(r.result).toEqual({ modified: true, counts: { nodes: 4, initializers: 2 } });
    expect(r.before).toEqual({ Tanh: 1, Exp: 1, Add: 1, If: 1, Mul: 1 });
    expect(r.after).toEqual({ If: 1, Mul: 1 });
    expect(then.graph.nodes.map((n) => n.opType)).toEqual(['Mul']);
    expect(m.graph.initializers.map((v) => v.name).sort()).toEqual(['const', 'outer', 'overridable', 'w']);
    expect(r.diffs).toEqual([0]);
    expect(r.second).toEqual({ modified: false, counts: {} });
  });

  it('keeps a node when any one of its outputs is read', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 6]);
    const [s0] = b.op.call('Split', [x], { axis: 1, num_outputs: 3 }, { outputs: 3 });
    b.output(b.op.Sigmoid(s0), 'y');
    const r = await checkPass(m, dce);
    expect(r.result.modified).toBe(false);
    expect(r.after).toEqual({ Split: 1, Sigmoid: 1 });
    expect(r.diffs).toEqual([0]);
  });
});
