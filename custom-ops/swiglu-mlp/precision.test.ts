import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/onnx/schema.js';
import { validateNode, type Target } from '../../src/fused/types.js';
import { fusedModelN, lonelyNode } from '../grad-testing.js';
import { ensureFunction } from '../functions.js';
import { createModel, GraphBuilder } from '../../src/ir/index.js';
import { f32, randn, relErr, rng, runOrt } from '../testing.js';
import { swigluMlp, swigluMlpKeep } from './function.js';
import { swigluMlpGradOp, swigluMlpKeepGradOp } from './grad-function.js';
import { swigluMlpGradRef, swigluMlpProjectionsRef, swigluMlpRef } from './reference.js';

const F = DataType.FLOAT;
const F16 = { precision: 'f16' };
/** Bodies vs the float64 reference with f16-rounded operands; the unrounded reference is further off than this. */
const TOL = 2e-5;

// [leading dims], H, I, weight scale: as swiglu-mlp.test.ts (a 3-D batch, odd sizes, rank-1 x, saturated gates).
const CASES = [[1, [2, 5], 16, 48, 0.3], [2, [7], 24, 40, 1], [3, [], 8, 12, 3], [4, [3, 1], 5, 9, 2]] as const;

describe("SwiGLUMLP bodies under precision 'f16' vs float64 references with f16-rounded GEMM operands", () => {
  for (const target of ['cpu', 'webgpu'] as Target[])
    it(target, async () => {
      for (const [seed, lead, h, i, scale] of CASES) {
        const m = (lead as readonly number[]).reduce((a, b) => a * b, 1);
        const s = { m, h, i };
        const r = rng(seed);
        const x = randn(r, m * h), wg = randn(r, i * h, scale), wu = randn(r, i * h, scale), wd = randn(r, h * i, scale), dy = randn(r, m * h);
        const xd = [...lead, h], gud = [...lead, i];
        const io = [{ name: 'x', elem: F, shape: xd }, { name: 'wg', elem: F, shape: [i, h] }, { name: 'wu', elem: F, shape: [i, h] }, { name: 'wd', elem: F, shape: [h, i] }];
        const feeds = { x: f32(x, xd), wg: f32(wg, [i, h]), wu: f32(wu, [i, h]), wd: f32(wd, [h, i]) };
        const what = `${target} ${lead} ${h} ${i}`;
        /** Error against the rounded reference below TOL, against the unrounded one above it. */
        const check = (name: string, got: ArrayLike<number>, rounded: ArrayLike<number>, plain: ArrayLike<number>) => {
          expect(relErr(got, rounded), `${name} ${what} vs rounded`).toBeLessThan(TOL);
          expect(relErr(got, plain), `${name} ${what} vs unrounded`).toBeGreaterThan(TOL);
        };

        const km = fusedModelN(swigluMlpKeep, io, F16, target, [{ name: 'y', elem: F, shape: xd }, { name: 'g', elem: F, shape: gud }, { name: 'u', elem: F, shape: gud }]);
        const kept = await runOrt(km, feeds);
        const proj = swigluMlpProjectionsRef(x, wg, wu, s, { f16: true }), proj32 = swigluMlpProjectionsRef(x, wg, wu, s);
        check('keep y', kept.y.data as Float32Array, swigluMlpRef(x, wg, wu, wd, s, { f16: true }), swigluMlpRef(x, wg, wu, wd, s));
        check('keep g', kept.g.data as Float32Array, proj.g, proj32.g);
        check('keep u', kept.u.data as Float32Array, proj.u, proj32.u);
        const ym = fusedModelN(swigluMlp, io, F16, target, [{ name: 'y', elem: F, shape: xd }]);
        const y = (await runOrt(ym, feeds)).y.data as Float32Array;
        expect(relErr(y, kept.y.data as Float32Array), `y ${what} as SwiGLUMLPKeep's`).toBe(0);

        const ref = swigluMlpGradRef(x, wg, wu, wd, dy, s, { f16: true }), ref32 = swigluMlpGradRef(x, wg, wu, wd, dy, s);
        const grads = ['dx', 'dwg', 'dwu', 'dwd'].map((name, k) => ({ name, elem: F, shape: k === 0 ? xd : k === 3 ? [h, i] : [i, h] }));
        const pairs = [['dx', 'dx'], ['dwg', 'dwGate'], ['dwu', 'dwUp'], ['dwd', 'dwDown']] as const;
        const gm = fusedModelN(swigluMlpGradOp, [...io, { name: 'dy', elem: F, shape: xd }], F16, target, grads);
        const out = await runOrt(gm, { ...feeds, dy: f32(dy, xd) });
        for (const [name, key] of pairs) check(name, out[name].data as Float32Array, ref[key], ref32[key]);
        // The saving form reads the g and u its forward kept (themselves from rounded operands).
        const kg = fusedModelN(swigluMlpKeepGradOp, [...io, { name: 'dy', elem: F, shape: xd }, { name: 'g', elem: F, shape: gud }, { name: 'u', elem: F, shape: gud }], F16, target, grads);
        const kout = await runOrt(kg, { ...feeds, dy: f32(dy, xd), g: kept.g, u: kept.u });
        for (const [name, key] of pairs) check(`keep ${name}`, kout[name].data as Float32Array, ref[key], ref32[key]);
      }
    });

  it("'fp32' (explicit) builds the same body as no attribute", () => {
    const io = [{ name: 'x', elem: F, shape: [3, 4] }, { name: 'wg', elem: F, shape: [6, 4] }, { name: 'wu', elem: F, shape: [6, 4] }, { name: 'wd', elem: F, shape: [4, 6] }];
    const ops = (attrs: Record<string, string>) => fusedModelN(swigluMlp, io, attrs, 'cpu', [{ name: 'y', elem: F, shape: [3, 4] }]).functions[0].body.nodes.map((n) => n.opType);
    expect(ops({ precision: 'fp32' })).toEqual(ops({}));
    expect(ops({})).not.toContain('Cast');
    expect(ops(F16).filter((t) => t === 'Cast')).toHaveLength(5); // x (shared by two GEMMs), three weights, the activation
  });

  it('a bad precision value fails naming the node and the value', () => {
    const io = [{ name: 'x', elem: F, shape: [3, 4] }, { name: 'wg', elem: F, shape: [6, 4] }, { name: 'wu', elem: F, shape: [6, 4] }, { name: 'wd', elem: F, shape: [4, 6] }];
    for (const op of [swigluMlp, swigluMlpKeep, swigluMlpGradOp]) {
      const extra = op === swigluMlpGradOp ? [{ name: 'dy', elem: F, shape: [3, 4] }] : [];
      expect(() => validateNode(op.schema, lonelyNode(op, 'mlp7', [...io, ...extra], { precision: 'bf16' })))
        .toThrow(`node 'mlp7' (ai.ortfuse::${op.schema.name}): attribute precision='bf16' is not one of 'fp32', 'f16'`);
    }
    expect(() => fusedModelN(swigluMlp, io, { precision: 'half' }, 'cpu', [{ name: 'y', elem: F, shape: [3, 4] }]))
      .toThrow(/attribute precision='half' is not one of 'fp32', 'f16'/);
  });

  it("callers that disagree: the cpu body compares the attribute at run time; the webgpu body refuses", async () => {
    const [m, h, i] = [6, 8, 12];
    const s = { m, h, i };
    const r = rng(9);
    const x = randn(r, m * h), wg = randn(r, i * h, 0.5), wu = randn(r, i * h, 0.5), wd = randn(r, h * i, 0.5);
    const build = () => {
      const model = createModel({ opset: 20 });
      const b = new GraphBuilder(model.graph);
      const ins = [b.input('x', F, [m, h]), b.input('wg', F, [i, h]), b.input('wu', F, [i, h]), b.input('wd', F, [h, i])];
      b.output(b.op.call('SwiGLUMLP', ins, F16, { domain: 'ai.ortfuse', name: 'half' })[0], 'y16');
      b.output(b.op.call('SwiGLUMLP', ins, {}, { domain: 'ai.ortfuse', name: 'full' })[0], 'y32');
      return model;
    };
    const model = build();
    ensureFunction(model, swigluMlp, 'cpu');
    const out = await runOrt(model, { x: f32(x, [m, h]), wg: f32(wg, [i, h]), wu: f32(wu, [i, h]), wd: f32(wd, [h, i]) });
    const rounded = swigluMlpRef(x, wg, wu, wd, s, { f16: true }), plain = swigluMlpRef(x, wg, wu, wd, s);
    expect(relErr(out.y16.data as Float32Array, rounded), 'f16 node').toBeLessThan(TOL);
    expect(relErr(out.y16.data as Float32Array, plain), 'f16 node vs unrounded').toBeGreaterThan(TOL);
    expect(relErr(out.y32.data as Float32Array, plain), 'fp32 node').toBeLessThan(1e-6);
    expect(() => ensureFunction(build(), swigluMlp, 'webgpu')).toThrow(/SwiGLUMLP nodes use different precisions \(f16, fp32\); the webgpu body needs one/);
  });
});
