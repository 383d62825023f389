import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/schema.js';
import { validateNode, type Target } from '../../src/fused/types.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { f32, randn, relErr, rng, runOrt } from '../testing.js';
import { gradCheck } from '../../test/autodiff-util.js';
import { ensureFunctions } from '../index.js';
import { FUSED_OPS } from '../registry.js';
import { buildTrainingGraph } from '../../src/autodiff/training.js';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { Tensor } from '../../src/ir/tensor.js';
import { causalAttention } from './function.js';
import { causalAttentionGradOp } from './grad-function.js';
import { causalAttentionGradRef, causalAttentionProductsRef, causalAttentionRef } from './reference.js';

const F = DataType.FLOAT;

// seed, B, Hq, Hkv, T, D, input scale: GQA 2:1 and 3:1, no grouping, T = 1, large scores (peaked softmax).
const CASES = [[1, 1, 2, 1, 5, 4, 1], [2, 2, 4, 2, 7, 8, 1], [3, 1, 3, 3, 6, 5, 1], [4, 2, 6, 2, 1, 3, 1], [5, 1, 2, 1, 9, 6, 4]] as const;

describe('CausalAttention and CausalAttentionGrad bodies vs float64 reference', () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    for (const precision of ['fp32', 'f16'] as const)
      it(`${target}, precision ${precision}`, async () => {
        for (const [seed, b, hq, hkv, t, d, mag] of CASES) {
          const r = rng(seed);
          const scale = 1 / Math.sqrt(d);
          const qd = [b, hq, t, d], kd = [b, hkv, t, d];
          const q = randn(r, b * hq * t * d, mag), k = randn(r, b * hkv * t * d, mag), v = randn(r, b * hkv * t * d), dout = randn(r, b * hq * t * d);
          const io = [{ name: 'q', elem: F, shape: qd }, { name: 'k', elem: F, shape: kd }, { name: 'v', elem: F, shape: kd }];
          const feeds = { q: f32(q, qd), k: f32(k, kd), v: f32(v, kd) };
          const attrs = { scale: { float: scale }, ...(precision === 'f16' ? { precision } : {}) };
          const fm = fusedModelN(causalAttention, io, attrs, target, [{ name: 'o', elem: F, shape: qd }, { name: 'lse', elem: F, shape: [b, hq, t] }]);
          const out = await runOrt(fm, feeds);
          const dims = { b, hq, hkv, t, d, scale };
          // fp32: the textbook reference; f16: product by product with rounded operands.
          const ref = precision === 'f16' ? causalAttentionProductsRef(q, k, v, dout, dims, true) : { ...causalAttentionRef(q, k, v, dims), ...causalAttentionGradRef(q, k, v, dout, dims) };
          const tag = `B${b} Hq${hq} Hkv${hkv} T${t} D${d}`;
          expect([out.o.dims, out.lse.dims]).toEqual([qd, [b, hq, t]]);
          expect(relErr(out.o.data as Float32Array, ref.o), `o ${tag}`).toBeLessThan(1e-5);
          expect(relErr(out.lse.data as Float32Array, ref.lse), `lse ${tag}`).toBeLessThan(1e-5);
          if (precision === 'f16' && t > 1) // the rounding is there: fp32 math is off by far more
            expect(relErr(out.o.data as Float32Array, causalAttentionRef(q, k, v, dims).o), `o ${tag} vs fp32`).toBeGreaterThan(1e-4);

          const gm = fusedModelN(causalAttentionGradOp, [...io, { name: 'o', elem: F, shape: qd }, { name: 'lse', elem: F, shape: [b, hq, t] }, { name: 'do', elem: F, shape: qd }], attrs, target,
            [{ name: 'dq', elem: F, shape: qd }, { name: 'dk', elem: F, shape: kd }, { name: 'dv', elem: F, shape: kd }]);
          const g = await runOrt(gm, { ...feeds, o: out.o, lse: out.lse, do: f32(dout, qd) });
          expect([g.dq.dims, g.dk.dims, g.dv.dims]).toEqual([qd, kd, kd]);
          // (T = 1 under f16: ds = do·v − do·o is only the rounding of do (p = 1, o = v), so fp32's
          // own rounding is large against it; dv = do has no such cancellation.)
          const tol = precision === 'f16' && t === 1 ? 1e-3 : 2e-5;
          for (const [name, want] of [['dq', ref.dq], ['dk', ref.dk], ['dv', ref.dv]] as const)
            expect(relErr(g[name].data as Float32Array, want), `${name} ${tag}`).toBeLessThan(name === 'dv' ? 2e-5 : tol);
        }
      });

  it('validators: ranks, head grouping, dims, scale, gradient inputs', () => {
    const io = (qs: (number | string)[], ks: (number | string)[], vs = ks, elem = F) =>
      [{ name: 'q', elem, shape: qs }, { name: 'k', elem: F, shape: ks }, { name: 'v', elem: F, shape: vs }];
    const fwd = (a: ReturnType<typeof io>, scale = 0.125) => validateNode(causalAttention.schema, lonelyNode(causalAttention, 'attn', a, { scale: { float: scale } }));
    expect(fwd(io(['B', 14, 'T', 64], ['B', 2, 'T', 64])).map((x) => x.shape)).toEqual([['B', 14, 'T', 64], ['B', 14, 'T']]);
    expect(() => fwd(io(['B', 14, 'T', 64], ['B', 4, 'T', 64]))).toThrow(
      "node 'attn' (ai.ortfuse::CausalAttention): query heads 14 are not a multiple of kv heads 4 (q [B,14,T,64], k [B,4,T,64], v [B,4,T,64]; expected [B, Hq, T, D], [B, Hkv, T, D], [B, Hkv, T, D])");
    expect(() => fwd(io([2, 4, 8, 16], [2, 2, 8, 16], [2, 2, 8, 8]))).toThrow(/head size differs .*: 16 vs 8/);
    expect(() => fwd(io([2, 4, 8, 16], [2, 2, 7, 16]))).toThrow(/sequence length differs .*: 8 vs 7/);
    expect(() => fwd(io([2, 4, 8], [2, 2, 8, 16]))).toThrow(/input 'q' has shape \[2,4,8\], expected rank 4/);
    expect(() => fwd(io([2, 4, 8, 16], [2, 2, 8, 16], [2, 2, 8, 16], DataType.DOUBLE))).toThrow(/'q' \(DOUBLE\) and 'k' \(FLOAT\)/);
    expect(() => fwd(io([2, 4, 8, 16], [2, 2, 8, 16]), 0)).toThrow(/scale=0 must be a finite number > 0/);
    const grad = (lse: number[], dout: number[]) => validateNode(causalAttentionGradOp.schema, lonelyNode(causalAttentionGradOp, 'attn_grad',
      [...io([2, 4, 8, 16], [2, 2, 8, 16]), { name: 'o', elem: F, shape: [2, 4, 8, 16] }, { name: 'lse', elem: F, shape: lse }, { name: 'do', elem: F, shape: dout }], { scale: { float: 0.25 } }));
    expect(grad([2, 4, 8], [2, 4, 8, 16]).map((x) => x.shape)).toEqual([[2, 4, 8, 16], [2, 2, 8, 16], [2, 2, 8, 16]]);
    expect(() => grad([2, 4, 7], [2, 4, 8, 16])).toThrow(/'lse' \[2,4,7\] and '\[B, Hq, T\] of q' \[2,4,8\] differ at axis 2: 7 vs 8/);
    expect(() => grad([2, 4, 8], [2, 2, 8, 16])).toThrow(/'do' \[2,2,8,16\] and 'q' \[2,4,8,16\] differ at axis 1/);
  });
});

describe('CausalAttention gradient rule vs finite differences (float64)', () => {
  const prepare = (m: Parameters<typeof ensureFunctions>[0]) => void ensureFunctions(m, 'cpu');
  const attn = (scale: number) => (b: Parameters<Parameters<typeof gradCheck>[1]>[0], xs: Parameters<Parameters<typeof gradCheck>[1]>[1]) =>
    b.op.call('CausalAttention', xs, { scale: { float: scale } }, { domain: 'ai.ortfuse', outputs: 2 })[0];

  it('q, k, v with GQA 3:1 and a symbolic batch/length (one CausalAttentionGrad; o and lse saved)', async () => {
    const r = await gradCheck([
      { name: 'q', dims: [2, 3, 4, 3], decl: ['B', 3, 'T', 3], lo: -2, hi: 2 },
      { name: 'k', dims: [2, 1, 4, 3], decl: ['B', 1, 'T', 3], lo: -2, hi: 2 },
      { name: 'v', dims: [2, 1, 4, 3], decl: ['B', 1, 'T', 3] },
    ], attn(0.7), { prepare });
    for (const n of ['q', 'k', 'v']) {
      expect(r.scale[n]).toBeGreaterThan(1e-3);
      expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
    }
    const ops = r.model.graph.nodes.filter((n) => n.domain === 'ai.ortfuse').map((n) => n.opType).sort();
    expect(ops).toEqual(['CausalAttention', 'CausalAttentionGrad']);
    const fwd = r.model.graph.nodes.find((n) => n.opType === 'CausalAttention')!;
    const bwd = r.model.graph.nodes.find((n) => n.opType === 'CausalAttentionGrad')!;
    expect(bwd.inputs.slice(0, 5)).toEqual([...fwd.inputs, ...fwd.outputs]);
  });

  it('frozen k (dq and dv only), no grouping', async () => {
    const r = await gradCheck([
      { name: 'q', dims: [1, 2, 5, 2] }, { name: 'k', dims: [1, 2, 5, 2], wrt: false }, { name: 'v', dims: [1, 2, 5, 2] },
    ], attn(1.3), { prepare });
    expect(Object.keys(r.errors).sort()).toEqual(['q', 'v']);
    for (const n of ['q', 'v']) expect(r.errors[n], `d/d${n}`).toBeLessThan(1e-6);
  });
});

describe("CausalAttention precision 'f16' through the training graph", () => {
  it("the CausalAttentionGrad node takes the forward node's precision and scale", () => {
    const m = createModel({ opset: 20 });
    const b = new GraphBuilder(m.graph);
    const r = rng(9);
    const w = (name: string, heads: number) => b.initializer(name, Tensor.from(F, [1, heads, 3, 2], Array.from(randn(r, heads * 6))));
    const [o] = b.op.call('CausalAttention', [w('q', 2), w('k', 1), w('v', 1)], { scale: { float: 0.5 }, precision: 'f16' }, { domain: 'ai.ortfuse', outputs: 2 });
    b.output(b.op.ReduceSum(o, { keepdims: 0 }), 'loss');
    const t = buildTrainingGraph(m, { ops: FUSED_OPS });
    const grad = t.graph.nodes.find((n) => n.opType === 'CausalAttentionGrad')!;
    expect([grad.attrString('precision', 'absent'), grad.attrFloat('scale')]).toEqual(['f16', 0.5]);
  });
});
