import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { transposeOfGemmPass } from './transpose-of-gemm.js';

const F = DataType.FLOAT;

describe('transpose-of-gemm', () => {
  it('swaps the operands of a transposed Gemm for every transA/transB; leaves C, alpha, shared results', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [6, 4]);
    const dy = b.input('dy', F, [6, 3]);
    const xt = b.input('xt', F, [4, 6]);
    const dyt = b.input('dyt', F, [3, 6]);
    const t = (v: ReturnType<typeof b.op.Gemm>) => b.op.Transpose(v, { perm: [1, 0] });
    b.output(t(b.op.Gemm(x, dy, { transA: 1 })), 'ta'); // the autodiff weight gradient: [3,4]
    b.output(t(b.op.Gemm(xt, dy)), 'plain');
    b.output(t(b.op.Gemm(x, dyt, { transA: 1, transB: 1 })), 'both');
    b.output(b.op.Transpose(b.op.Gemm(xt, dyt, { transB: 1 })), 'default_perm');
    b.output(t(b.op.Gemm(x, dy, { transA: 1 }, )), 'dup');
    b.output(t(b.op.Gemm(xt, dy, b.input('c', F, [4, 3]))), 'with_c'); // kept
    b.output(t(b.op.Gemm(x, dy, { transA: 1, alpha: 0.5 })), 'alpha'); // kept
    const shared = b.op.Gemm(x, dy, { transA: 1 });
    b.output(t(shared), 'shared_t'); // kept: the Gemm's result is read elsewhere too
    b.output(shared, 'shared');
    const res = await checkPass(m, transposeOfGemmPass);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ 'transpose-of-gemm': 5 });
    expect(res.after).toEqual({ Gemm: 8, Transpose: 3 });
    const ta = m.graph.outputs[0].producer!;
    expect([ta.opType, ta.inputs.map((v) => v!.name), ta.attrInt('transA', 0), ta.attrInt('transB', 0)]).toEqual(['Gemm', ['dy', 'x'], 1, 0]);
    expect(res.diffs.every((d) => d < 1e-6)).toBe(true);
    expect(res.second).toEqual({ modified: false, counts: {} });
  });
});
