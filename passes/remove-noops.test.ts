import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { tensorType } from '../src/ir/types.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { removeNoops } from './remove-noops.js';

const F = DataType.FLOAT;

describe('remove-noops', () => {
  it('removes Identity, same-type Cast and same-shape Reshape; keeps real conversions', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 3, 4]);
    const typed = <T extends ReturnType<typeof b.op.Relu>>(v: T, shape: (number | string)[], t = F): T => ((v.type = tensorType(t, shape)), v);
    const r = typed(b.op.Relu(b.op.Identity(b.op.Identity(x))), [2, 3, 4]);
    const c = typed(b.op.Cast(r, { to: F }), [2, 3, 4]); // same type: removed
    const d = b.op.Cast(c, { to: DataType.DOUBLE }); // real conversion: kept
    const s1 = b.op.Reshape(c, b.constant([2, 3, 4])); // same shape: removed
    const s2 = b.op.Reshape(s1, b.constant([0, -1, 4])); // 0 and -1 resolve to the same shape: removed
    const s3 = b.op.Reshape(s2, b.constant([6, 4])); // real reshape: kept
    const unknown = b.op.Cast(b.op.Sigmoid(x), { to: F }); // input type unknown: kept
    b.output(b.op.Identity(s3), 'y'); // graph output produced by an Identity of an inner value: removed, name kept
    b.output(d, 'd');
    b.output(unknown, 'u');
    b.output(b.op.Identity(x), 'passthrough'); // graph input -> graph output: must stay
    b.output(b.op.Cast(x, { to: F }), 'cast_x'); // same: must stay

    const res = await checkPass(m, removeNoops);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ Identity: 3, Cast: 1, Reshape: 2 });
    expect(res.before).toEqual({ Identity: 4, Relu: 1, Cast: 4, Reshape: 3, Sigmoid: 1 });
    expect(res.after).toEqual({ Identity: 1, Relu: 1, Cast: 3, Reshape: 1, Sigmoid: 1 });
    expect(m.graph.outputs.map((o) => o.name)).toEqual(['y', 'd', 'u', 'passthrough', 'cast_x']);
    expect(m.graph.outputs[0].producer?.opType).toBe('Reshape');
    expect(res.diffs).toEqual([0, 0, 0, 0, 0]);
    expect(res.second).toEqual({ modified: false, counts: {} });
  });
});
