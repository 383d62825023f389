import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../src/ir/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorType } from '../src/ir/types.js';
import { DataType } from '../src/onnx/schema.js';
import { checkPass } from '../src/rewrite/testing.js';
import { upcastFloat } from './upcast-float.js';
import { narrowToHalf, widenHalf } from '../src/onnx/half.js';

const { FLOAT: F, FLOAT16: H, BFLOAT16: BF } = DataType;

describe('upcast-float', () => {
  it('widens float16 and bfloat16 bits exactly (normals, subnormals, signs, infinities, NaN)', () => {
    const h = widenHalf(H, Uint16Array.of(0x3c00, 0xc000, 0x0001, 0x8400, 0x7bff, 0x7c00, 0xfc00, 0x3555, 0x0000, 0x8000));
    expect([...h.slice(0, 8)]).toEqual([1, -2, 2 ** -24, -(2 ** -14), 65504, Infinity, -Infinity, 0.333251953125]);
    expect(Object.is(h[8], 0) && Object.is(h[9], -0)).toBe(true);
    expect(widenHalf(H, Uint16Array.of(0x7e00))[0]).toBeNaN();
    expect([...widenHalf(BF, Uint16Array.of(0x3f80, 0xc040, 0x3eab, 0x7f80, 0x0001))]).toEqual([1, -3, 0.333984375, Infinity, 2 ** -133]);
  });

  it('narrows float32 to float16 / bfloat16 to nearest even; every non-NaN pattern survives widen then narrow', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const t of [H, BF]) {
      const wide = widenHalf(t, all);
      const back = narrowToHalf(t, wide);
      const bad = [...all].filter((b, i) => !Number.isNaN(wide[i]) && back[i] !== b);
      expect(bad, `${t}`).toEqual([]);
      expect([...all].filter((_, i) => Number.isNaN(wide[i])).every((b) => Number.isNaN(widenHalf(t, narrowToHalf(t, widenHalf(t, Uint16Array.of(b))))[0]))).toBe(true);
    }
    const f = (xs: number[]) => Float32Array.from(xs);
    expect([...narrowToHalf(H, f([1 / 3, 65504, 65519, 65520, 1e6, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, -(2 ** -14), 1 + 2 ** -11, 1 + 3 * 2 ** -11]))])
      .toEqual([0x3555, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x0001, 0x0000, 0x0001, 0x8400, 0x3c00, 0x3c02]);
    expect([...narrowToHalf(BF, f([1, 1 / 3, -3, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38]))]).toEqual([0x3f80, 0x3eab, 0xc040, 0x3f80, 0x3f82, 0x7f80]);
  });

  it('a float16 graph (initializer, Cast, ConstantOfShape) computes in fp32 what it computed in fp16; nothing half is left', async () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', F, [2, 8]);
    const half = (v: ReturnType<typeof b.op.Relu>) => ((v.type = tensorType(H, [2, 8])), v);
    const xh = half(b.op.Cast(x, { to: H }));
    const w = b.initializer('w', Tensor.from(H, [8], Uint16Array.of(0x3c00, 0x3800, 0xc000, 0x3555, 0x4200, 0x0001, 0xb800, 0x3c01)));
    const bias = b.op.ConstantOfShape(b.constant([2, 8], { dtype: DataType.INT64 }), { value: Tensor.from(H, [1], Uint16Array.of(0x3800)) });
    const y = half(b.op.Add(half(b.op.Mul(xh, w)), bias));
    b.output(b.op.Cast(y, { to: F }), 'y');
    const res = await checkPass(m, upcastFloat);
    expect(res.problems).toEqual([]);
    expect(res.result.counts).toEqual({ initializers: 1, values: 4, attributes: 2 }); // values: w, the Cast, Mul and Add outputs
    // fp16 rounding of the products and sums is gone: at most a few fp16 ulps of |y| ≲ 8 apart
    expect(res.diffs[0]).toBeLessThan(2e-2);
    expect(m.graph.initializers.every((v) => v.initializer!.dtype !== H)).toBe(true);
    expect(m.graph.nodes.filter((n) => n.opType === 'Cast').map((n) => n.attrInt('to'))).toEqual([F, F]);
    expect(res.second.modified).toBe(false);
  });
});
