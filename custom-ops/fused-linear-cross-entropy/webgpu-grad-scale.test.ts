/**
 * The FusedLinearCrossEntropy WGSL kernel's gradOutput as FusedLinearCrossEntropyWithGrad's
 * grad_scale, on dawn.node (SwiftShader here): 2^k gives exactly 2^k × the gradients without it
 * (fp32 and precision 'f16', whose flce_grad_scale applies it after the GEMMs; also accumulating into
 * zeroed gradWeight / gradBias, the tied-embedding path), the loss unchanged; the kernel entry
 * (webgpu/entry.ts) passes the call's input 4 as gradOutput and names a grad_scale of the wrong size.
 */
import { describe, expect, it } from 'vitest';
import type { GpuValue, KernelCall } from '../../src/ops/kernel.js';
import { gpuEnv, randn, rng } from '../../test/webgpu-helpers.js';
import { flceKernel } from './webgpu/entry.js';
import { fusedLinearCrossEntropy, type FlceArgs } from './webgpu/flce.js';

const env = await gpuEnv();

interface Case { n: number; h: number; v: number; reduction: 'mean' | 'sum'; eps: number; bias: boolean; chunkRows: number }

const CASES: [string, Case][] = [
  ['mean, bias, ignored rows, chunk 8 of 37 rows', { n: 37, h: 24, v: 300, reduction: 'mean', eps: 0, bias: true, chunkRows: 8 }],
  ['sum, label smoothing 0.1, no bias', { n: 23, h: 16, v: 517, reduction: 'sum', eps: 0.1, bias: false, chunkRows: 5 }],
];

/** y is exactly s × x, element by element (s a power of two: no rounding). */
function expectScaled(what: string, y: Float32Array, x: Float32Array, s: number) {
  expect(y.length).toBe(x.length);
  expect(x.some((t) => t !== 0), `${what} is not all zero`).toBe(true);
  for (let i = 0; i < x.length; i++) if (y[i] !== s * x[i]) expect.fail(`${what}[${i}]: ${y[i]} is not ${s} × ${x[i]}`);
}

describe.skipIf(!env.ctx)('FusedLinearCrossEntropy WGSL kernel: gradOutput as grad_scale (dawn.node)', () => {
  const ctx = env.ctx!;

  function inputs(c: Case, seed: number) {
    const r = rng(seed);
    const lab = Array.from({ length: c.n }, (_, i) => (i % 5 === 2 ? -100 : Math.floor(r() * c.v)));
    return {
      hidden: ctx.upload('hidden', randn(r, c.n * c.h)), weight: ctx.upload('weight', randn(r, c.v * c.h, 0.5)),
      bias: c.bias ? ctx.upload('bias', randn(r, c.v)) : undefined, labels: ctx.upload('labels', BigInt64Array.from(lab, BigInt)),
    };
  }

  /** Loss and gradients of the kernel at gradOutput `s` (undefined: none). */
  async function run(c: Case, ins: ReturnType<typeof inputs>, s: number | undefined, extra: Partial<FlceArgs> = {}) {
    const out = fusedLinearCrossEntropy(ctx, {
      ...ins, n: c.n, h: c.h, v: c.v, reduction: c.reduction, labelSmoothing: c.eps, chunkRows: c.chunkRows,
      gradOutput: s === undefined ? undefined : ctx.upload('gradOutput', Float32Array.of(s)), ...extra,
    });
    return {
      loss: (await ctx.readF32(out.loss, 1))[0],
      dh: await ctx.readF32(out.gradHidden!, c.n * c.h),
      dw: await ctx.readF32(out.gradWeight!, c.v * c.h),
      db: out.gradBias && (await ctx.readF32(out.gradBias, c.v)),
    };
  }

  for (const precision of ['fp32', 'f16'] as const)
    for (const accumulate of [false, true])
      it.each(CASES)(`${precision}${accumulate ? ', accumulating into zeroed gradients' : ''}: %s — gradOutput 2^k gives exactly 2^k × the gradients`, async (_name, c) => {
        const ins = inputs(c, c.n * 7 + c.v);
        // Accumulation (gradient accumulation, tied embeddings) into zeros: the same values, through the 'add' paths.
        const extra = () => (accumulate ? { accumulate, out: { gradWeight: ctx.upload('w0', new Float32Array(c.v * c.h)), ...(c.bias ? { gradBias: ctx.upload('b0', new Float32Array(c.v)) } : {}) } } : {});
        const plain = await run(c, ins, undefined, { precision, ...extra() });
        for (const s of [2 ** 10, 2 ** -3]) {
          const got = await run(c, ins, s, { precision, ...extra() });
          expect(got.loss, `loss at ${s}`).toBe(plain.loss);
          expectScaled(`dh at ${s}`, got.dh, plain.dh, s);
          expectScaled(`dw at ${s}`, got.dw, plain.dw, s);
          if (c.bias) expectScaled(`db at ${s}`, got.db!, plain.db!, s);
        }
      });

  it("the kernel entry passes WithGrad's input 4 (grad_scale) as gradOutput, and names one of the wrong size", async () => {
    const c = CASES[0][1];
    const ins = inputs(c, 11);
    const f32 = (buffer: GPUBuffer, dims: number[]): GpuValue => ({ buffer, dims, type: 'float32' });
    const values: (GpuValue | undefined)[] = [f32(ins.hidden, [c.n, c.h]), f32(ins.weight, [c.v, c.h]), f32(ins.bias!, [c.v]), { buffer: ins.labels, dims: [c.n], type: 'int64' }];
    const call = (scaled: boolean): KernelCall => ({
      op: 'flce', node: "node 'lce' (ai.ortfuse::FusedLinearCrossEntropyWithGrad)", inputs: ['h', 'w', 'b', 'y', ...(scaled ? ['loss_scale'] : [])],
      outputs: ['loss', 'dh', 'dw', 'db'], attrs: { reduction: 'mean', ignoreIndex: -100, labelSmoothing: 0, chunkRows: 8, precision: 'f16' },
    });
    const read = async (vs: (GpuValue | undefined)[], scaled: boolean) => {
      const r = flceKernel.run(ctx, call(scaled), vs, () => false);
      return Promise.all([0, 1, 2, 3].map((i) => ctx.readF32(r.outputs[i]!.buffer, r.outputs[i]!.dims.reduce((a, b) => a * b, 1))));
    };
    const plain = await read(values, false);
    const got = await read([...values, f32(ctx.upload('loss_scale', Float32Array.of(2 ** 12)), [])], true);
    expect(got[0][0]).toBe(plain[0][0]);
    ['dh', 'dw', 'db'].forEach((k, i) => expectScaled(k, got[i + 1], plain[i + 1], 2 ** 12));
    expect(() => flceKernel.run(ctx, call(true), [...values, f32(ctx.upload('two', Float32Array.of(1, 2)), [2])], () => false))
      .toThrow("node 'lce' (ai.ortfuse::FusedLinearCrossEntropyWithGrad) (our flce kernel): grad_scale has shape [2], expected one element");
    expect(() => flceKernel.run(ctx, call(true), values, () => false))
      .toThrow("node 'lce' (ai.ortfuse::FusedLinearCrossEntropyWithGrad) (our flce kernel): input 4 'grad_scale' is missing");
  });
});
