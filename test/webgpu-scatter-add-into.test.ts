/**
 * The tied weight's gradient as one scatter into the lm_head's gradient (passes/scatter-add-into.ts)
 * on the webgpu backend (the glue kernel itself: test/webgpu-glue.test.ts): in the stage plan, the
 * scatter is our kernel reading the linear-CE gradient, which nothing reads after it (so the runner
 * lets it write in place); training the tiny Qwen2 with every op on our kernels and a tied
 * default-settings torch export equals the cpu backend.
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { loadFile } from '../src/onnx/io.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();
const TIED = new URL('../models/fixtures/default/qwen2-default-tied.onnx', import.meta.url).pathname;

describe('the tied gradient in the webgpu stage plan', () => {
  it.each([
    ['the builder graph', () => buildQwen2(TINY, { seed: 1 })],
    ['a default-settings torch export (tied)', () => loadFile(TIED)],
  ])('%s: the scatter is our kernel reading the linear-CE gradient last; no ORT GPU segment', (_, model) => {
    const p = prepareTraining(model(), { fuse: true, fuseMlp: true, fuseAttention: true, fuseLinear: true, target: 'webgpu' });
    expect(p.report!.passes.find((x) => x.name === 'scatter-add-into')!.counts).toEqual({ 'scatter-add-into': 1 });
    for (const kernels of ['default', 'all']) {
      const split = splitStages(webgpuGraph(p.train, { batch: 2, seq: 16 }), parseKernels(kernels), FUSED_OPS)!;
      const at = split.plan.steps.findIndex((s) => s.kind === 'kernel' && s.call.op === 'scatterAdd');
      const step = split.plan.steps[at];
      if (step?.kind !== 'kernel') throw new Error('no scatterAdd kernel step');
      expect(step.call.attrs.zeros).toBe(0);
      expect(step.call.inputs).toHaveLength(3);
      const data = step.call.inputs[0]!;
      expect(data).toMatch(/grad_weight/);
      expect(split.plan.lastUse[data]).toBe(at);
      expect(split.plan.outputs).not.toContain(data);
      expect(split.plan.outputs).toContain(step.call.outputs[0]);
      expect(split.segments.map((s) => s.graph.nodes.map((n) => n.opType)).flat()).not.toContain('ScatterND');
      expect(split.plan.hostSegments).toEqual(split.segments.map((_, i) => i));
    }
  });
});

describe.skipIf(!env.ctx)('training with the scatter into the tied gradient (dawn.node)', () => {
  const text = mobyDick().slice(0, 60_000);

  it.each([
    ['the builder graph, every op on our kernels', () => buildQwen2(TINY, { seed: 1 }), 'all'],
    ['a default-settings torch export (tied), the webgpu defaults', () => loadFile(TIED), undefined],
  ])('%s: 4 steps equal the cpu backend within 1e-5', async (_, model, kernels) => {
    const tok = await getTokenizer('bytes');
    const opts: TrainOptions = { steps: 4, batch: 2, seq: 16, lr: 3e-3, seed: 5, fuse: true, fuseAttention: true, fuseLinear: true };
    const gpu = await runTraining(model(), text, tok, { ...opts, backend: 'webgpu', ...(kernels ? { kernels } : {}) });
    const cpu = await runTraining(model(), text, tok, { ...opts, backend: 'cpu' });
    console.log(`scatter into the tied gradient, webgpu vs cpu: ${gpu.map((x) => x.loss.toFixed(6)).join(' ')} vs ${cpu.map((x) => x.loss.toFixed(6)).join(' ')}`);
    gpu.forEach((x, i) => expect(Math.abs(x.loss - cpu[i].loss)).toBeLessThan(1e-5));
  });
});
