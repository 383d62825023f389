/**
 * The webgpu step without ORT's GPU runs (issue 12): the embedding Gather runs as our glue kernel
 * (src/webgpu/glue.ts gatherRows) on the parameter and the batch's input_ids, and what is left of
 * the step's first segment — index arithmetic on the batch and tables from constants — runs on
 * ORT's CPU (wasm) EP as a host segment (StagePlan.hostSegments), its outputs written once a step
 * into pooled GPU buffers. Checked: the Gather against a float64 reference (negative and
 * out-of-range ids), the plan of the tiny step and of a default-settings torch export (no ORT GPU
 * segment), and training against the cpu backend.
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { loadFile } from '../src/onnx/io.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { gatherRows } from '../src/webgpu/glue.js';
import { gpuEnv, randn, rng } from './webgpu-helpers.js';

const env = await gpuEnv();
const EXPORT = new URL('../models/fixtures/default/qwen2-default-gqa.onnx', import.meta.url).pathname;

describe.skipIf(!env.ctx)('glue Gather on the device (dawn.node)', () => {
  const ctx = env.ctx!;

  it('rows of [V, H] by int64 ids: negative ids from the end, out-of-range ids give zero rows (float64 reference)', async () => {
    const v = 11, h = 7, r = rng(4);
    const data = randn(r, v * h);
    const ids = BigInt64Array.from([0n, 10n, -1n, -11n, 3n, 11n, -12n, 5n, 2n ** 40n, 3n, 3n, -5n]);
    const out = gatherRows(ctx, { buffer: ctx.upload('data', data), dims: [v, h] }, { buffer: ctx.upload('ids', ids), dims: [3, 4] });
    expect(out.dims).toEqual([3, 4, h]);
    const got = await ctx.readF32(out.buffer, ids.length * h);
    const want = new Float64Array(ids.length * h).map((_, i) => {
      const k = Number(ids[Math.floor(i / h)]), row = k < 0 ? k + v : k;
      return row >= 0 && row < v ? data[row * h + (i % h)] : 0;
    });
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});

describe('the step plan without ORT GPU runs', () => {
  const shape = { batch: 2, seq: 16 };
  const kinds = (split: NonNullable<ReturnType<typeof splitStages>>) => split.segments.map((m, i) => `${split.plan.hostSegments?.includes(i) ? 'host' : 'gpu'}: ${m.graph.nodes.map((n) => n.opType).join(' ')}`);

  it.each([
    ['the builder graph', () => buildQwen2(TINY, { seed: 1 })],
    ['a default-settings torch export', () => loadFile(EXPORT)],
  ])('%s: the embedding Gather is our kernel, the one segment left reads only the batch and runs on the host', (_, model) => {
    const p = prepareTraining(model(), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention: true, target: 'webgpu' });
    const split = splitStages(webgpuGraph(p.train, shape), parseKernels('default'), FUSED_OPS)!;
    console.log(kinds(split).join('\n'));
    expect(split.plan.steps.filter((s) => s.kind === 'kernel' && s.call.op === 'gather').length).toBeGreaterThanOrEqual(1);
    expect(split.segments).toHaveLength(1);
    expect(split.plan.hostSegments).toEqual([0]);
    expect(split.segments[0].graph.inputs.map((v) => v.name).sort()).toEqual(expect.arrayContaining(['labels']));
    expect(split.segments[0].graph.nodes.map((n) => n.opType)).not.toContain('Gather');
    // With the glue in ORT, the Gather and the host arithmetic share a GPU segment again.
    const noGlue = splitStages(webgpuGraph(p.train, shape), parseKernels('default,glue=ort'), FUSED_OPS)!;
    expect(noGlue.plan.hostSegments ?? []).toEqual([]);
  });
});

describe.skipIf(!env.ctx)('training with the host prologue (dawn.node)', () => {
  const text = mobyDick().slice(0, 60_000);

  it.each([
    ['the builder graph', () => buildQwen2(TINY, { seed: 1 })],
    ['a default-settings torch export', () => loadFile(EXPORT)],
  ])('%s: 4 steps (every ORT segment on the host) equal the cpu backend within 1e-5', async (_, model) => {
    const tok = await getTokenizer('bytes');
    const opts: TrainOptions = { steps: 4, batch: 2, seq: 16, lr: 3e-3, seed: 5, fuse: true, fuseAttention: true, fuseLinear: true };
    const gpu = await runTraining(model(), text, tok, { ...opts, backend: 'webgpu' });
    const cpu = await runTraining(model(), text, tok, { ...opts, backend: 'cpu' });
    console.log(`host prologue vs cpu: ${gpu.map((r) => r.loss.toFixed(6)).join(' ')} vs ${cpu.map((r) => r.loss.toFixed(6)).join(' ')}`);
    gpu.forEach((r, i) => expect(Math.abs(r.loss - cpu[i].loss)).toBeLessThan(1e-5));
  });
});
