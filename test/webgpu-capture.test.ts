/**
 * Graph capture of the webgpu stage plan (src/runtime/webgpu/capture.ts): the segments that read no
 * host input run as ORT-web capture sessions on fixed buffers. Trained side by side on the same
 * batches, the captured trainer gives the uncaptured trainer's losses and parameters step after
 * step (a capture that replayed stale bindings would train on the first batch's activations and
 * drift at step 2), with the default policy and with every fused op on our kernels; and
 * `ortfuse train --graph-capture` reaches it (runTraining gives the same losses).
 */
import { describe, expect, it } from 'vitest';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { batches, split } from '../src/data/batches.js';
import { prepareTraining } from '../src/runtime/session.js';
import { createNodeWebGpuTrainer } from '../src/runtime/webgpu/ort-web-node.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { parseKernels } from '../src/runtime/webgpu/training-spec.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import type { TrainerOptions } from '../src/runtime/trainer.js';
import { gpuEnv, relL2 } from './webgpu-helpers.js';

const env = await gpuEnv();
/** The first n batches of an endless stream. */
function take<T>(it: Iterator<T>, n: number): T[] {
  return Array.from({ length: n }, () => it.next().value as T);
}
const shape = { batch: 2, seq: 32 };

describe.skipIf(!env.ctx)('webgpu graph capture (dawn.node)', () => {
  for (const kernels of ['default', 'all'])
    it(`${kernels} kernels: 4 steps captured = uncaptured (losses, parameters)`, async () => {
      const tok = await getTokenizer('bytes');
      const data = take(batches(split(tok.encode(mobyDick().slice(0, 60_000)), 32).train, 2, 32, 3), 4);
      const run = async (graphCapture: boolean) => {
        const p = prepareTraining(buildQwen2(TINY, { seed: 2 }), { fuse: true, target: 'webgpu' });
        const opts: TrainerOptions = { optimizer: { lr: 3e-3, maxGradNorm: kernels === 'all' ? 0 : 1 }, schedule: { lr: 3e-3, warmupSteps: 0, totalSteps: 4 }, graphCapture };
        const t = await createNodeWebGpuTrainer(p.train, p.initial, opts, kernels === 'all' ? parseKernels('all') : {}, shape);
        try {
          const runner = t.runner as StagedSteps;
          expect(runner).toBeInstanceOf(StagedSteps);
          const captured = runner.capture?.segments.size ?? 0;
          const losses = [];
          for (const b of data) losses.push((await t.train(b)).loss);
          const state = await t.state({});
          return { losses, params: state.params, captured, segments: runner.segmentCount };
        } finally {
          await t.release();
        }
      };
      const plain = await run(false);
      const cap = await run(true);
      console.log(`${kernels}: ${cap.captured} of ${cap.segments} segments captured; losses ${cap.losses.map((x) => x.toFixed(6)).join(' ')} vs ${plain.losses.map((x) => x.toFixed(6)).join(' ')}`);
      expect(plain.captured).toBe(0);
      expect(cap.captured).toBeGreaterThan(0);
      expect(cap.captured).toBeLessThan(cap.segments);
      // Distinct batches: a replay of the first step's bindings would repeat its loss.
      expect(new Set(plain.losses.map((x) => x.toFixed(4))).size).toBe(4);
      for (const [i, l] of cap.losses.entries()) expect(Math.abs(l - plain.losses[i]), `step ${i + 1}`).toBeLessThan(1e-5);
      for (const [name, q] of plain.params) expect(relL2(cap.params.get(name)!.value, q.value), name).toBeLessThan(1e-5);
    });

  it('ortfuse train --graph-capture (runTraining): the same losses as without', async () => {
    const tok = await getTokenizer('bytes');
    // Session 8's default plan (6 ORT segments), 4 of them reading no batch input (the labels' shift
    // for linear-CE stays in the first): under the webgpu defaults 1 segment is left, reading the batch.
    const opts: TrainOptions = { steps: 3, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 0, backend: 'webgpu', kernels: 'flce,swiglu,mlp,linear', fuseAttention: false, fuseLinear: false };
    const text = mobyDick().slice(0, 60_000);
    const plain = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, opts);
    let captured: { segments: number; of: number } | undefined;
    const cap = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...opts, graphCapture: true }, { onStart: (i) => void (captured = i.backend.captured) });
    expect(captured).toEqual({ segments: 4, of: 6 });
    expect(cap.map((r) => r.loss)).toEqual(plain.map((r) => r.loss));
  });
});
