import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { transposePairPass } from './transpose-pair.js';

const F = DataType.FLOAT;

describe('transpose-pair', () => {
  it('composes two Transposes, drops an identity pair, keeps the shared inner one and graph outputs', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const w = b.input('w', F, [3, 5]);
    const x = b.input('x', F, [2, 3, 5, 7]);
    const wt = b.op.Transpose(w, { perm: [1, 0] });
    b.output(b.op.MatMul(b.input('a', F, [4, 5]), wt), 'fwd'); // the inner Transpose is read here too
    b.output(b.op.Relu(b.op.Transpose(wt, { perm: [1, 0] })), 'back'); // identity pair: Relu(w)
    b.output(b.op.Transpose(b.op.Transpose(x, { perm: [0, 2, 1, 3] }), { perm: [3, 1, 0, 2] }), 'composed');
    b.output(b.op.Transpose(b.op.Transpose(x, { perm: [0, 2, 1, 3] }), { perm: [0, 2, 1, 3] }), 'out_identity');
    b.output(b.op.Transpose(b.op.Transpose(x, { perm: [3, 2, 1, 0] })), 'default_perms'); // reversed twice: outer perm from the (known) rank
    b.output(b.op.Transpose(b.op.Transpose(b.op.Relu(x))), 'unknown_rank'); // Relu's output is untyped: kept
    const res = await checkPass(m, transposePairPass);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ 'transpose-pair': 4 });
    expect(res.before).toEqual({ Transpose: 10, MatMul: 1, Relu: 2 });
    // wt for the MatMul, one composed Transpose, the untyped pair; outputs equal to x keep an Identity.
    expect(res.after).toEqual({ Transpose: 4, MatMul: 1, Relu: 2, Identity: 2 });
    expect(m.graph.outputs.find((o) => o.name === 'back')!.producer!.input(0)!.name).toBe('w');
    expect(m.graph.outputs.find((o) => o.name === 'composed')!.producer!.attrInts('perm')).toEqual([3, 2, 0, 1]);
    expect(res.diffs).toEqual([0, 0, 0, 0, 0, 0]);
    expect(res.second).toEqual({ modified: false, counts: {} });
  });
});
