/**
 * The step tape (src/webgpu/step-tape.ts, GpuContext.startTape/endTape/replay) on a real device:
 * a small "step" of our own — host data written, a kernel with a uniform, a clear, a copy, two
 * submits — recorded twice on a held pool is the same tape; replaying it with new host data gives
 * what recording that data gives; a changed uniform, a changed buffer or a destroyed buffer is
 * told apart; any buffer or command change between steps makes the tape stale.
 *
 * The trainer's use (src/runtime/webgpu/replay.ts) on the tiny Qwen2 with every op on our kernels:
 * replayed steps give the same losses, norms, parameters and moments as recording every step, bit
 * for bit, on both update paths and in mixed precision; an evaluation between steps makes the next
 * steps record again, and replays resume after two agree.
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../src/webgpu/context.js';
import { tapeDifference, type StepTape } from '../src/webgpu/step-tape.js';
import { dispatch1d, type Program } from '../src/webgpu/program.js';
import { StagedSteps } from '../src/runtime/webgpu/steps.js';
import type { WebGpuTrainer } from '../src/runtime/webgpu/trainer.js';
import { expectSameState, openTrainer, snapshot, trainBatches } from './mixed-helpers.js';
import { gpuEnv } from './webgpu-helpers.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { TEXT } from './mixed-helpers.js';

const env = await gpuEnv();

/** y[i] = a·x[i] + i (a uniform). */
const axpi = (n: number, a: number): Program => ({
  name: 'test_axpi',
  cacheKey: '',
  workgroupSize: [64],
  dispatch: dispatch1d(Math.ceil(n / 64)),
  uniforms: [{ name: 'n', type: 'u32', value: n }, { name: 'a', type: 'f32', value: a }],
  bindings: [{ name: 'x', access: 'read', type: 'f32' }, { name: 'y', access: 'read_write', type: 'f32' }],
  source: () => ({ main: '  let i = flatWorkgroup(wid, nwg) * 64u + lidx;\n  if (i < u.n) { y[i] = u.a * x[i] + f32(i); }' }),
});

describe.skipIf(!env.ctx)('step tape on dawn.node', () => {
  const N = 300;
  /** One "step": x written from the host, y = a·x + i, z cleared then y copied into its second half; returns z (kept, not pooled). */
  const step = (ctx: GpuContext, x: Float32Array, a: number, z: GPUBuffer) => {
    ctx.holdPool(true);
    const xb = ctx.write('x', x, 'x');
    const y = ctx.buffer('y', N * 4, 'any');
    ctx.run(axpi(N, a), [xb, y]);
    ctx.clear(z);
    ctx.copy(y, 0, z, N * 4, N * 4);
    ctx.submit();
    ctx.release(xb);
    ctx.release(y);
    ctx.holdPool(false);
  };
  const want = (x: Float32Array, a: number) => [...new Array<number>(N).fill(0), ...Array.from(x, (v, i) => Math.fround(Math.fround(a * v) + i))];

  it('recorded twice: the same tape; replayed with new host data: what recording gives', async () => {
    const ctx = new GpuContext(env.ctx!.device, { poolBytes: 1 << 20 });
    const z = ctx.upload('z', new Float32Array(2 * N));
    const xs = [1, 2, 3, 4].map((k) => Float32Array.from({ length: N }, (_, i) => Math.sin(i * k)));
    const tapes: StepTape[] = [];
    for (const x of xs.slice(0, 2)) {
      ctx.startTape();
      step(ctx, x, 0.5, z);
      const t = ctx.endTape();
      if (typeof t === 'string') throw new Error(t);
      tapes.push(t);
    }
    // The first step creates its buffers, the second reuses them: from the second on, steps agree.
    ctx.startTape();
    step(ctx, xs[2], 0.5, z);
    const third = ctx.endTape() as StepTape;
    expect(tapeDifference(tapes[1], third)).toBeUndefined();
    expect(third.ops.map((o) => o.kind)).toEqual(['write', 'dispatch', 'clear', 'copy', 'submit']);
    expect(third.dispatches).toBe(1);
    expect(Array.from(await ctx.readF32(z, 2 * N))).toEqual(want(xs[2], 0.5));
    // Replay with the fourth input: z as recording it would make.
    expect(ctx.tapeValid(third)).toBe(true);
    const before = ctx.dispatches;
    ctx.replay(third, (key) => (key === 'x' ? xs[3] : new Float32Array(0)));
    expect(ctx.dispatches).toBe(before + 1);
    expect(Array.from(await ctx.readF32(z, 2 * N))).toEqual(want(xs[3], 0.5));
    // A host value of another length is refused before anything is queued.
    expect(() => ctx.replay(third, () => new Float32Array(N + 1))).toThrow(/'x' has 1204 bytes, the recorded step wrote 1200/);
    // Reading back changed no buffer: still valid. Any buffer or command outside a tape: stale.
    expect(ctx.tapeValid(third)).toBe(true);
    ctx.release(ctx.buffer('other', 64));
    expect(ctx.tapeValid(third)).toBe(false);
    expect(() => ctx.replay(third, () => xs[0])).toThrow(/stale/);
    ctx.destroy();
  });

  it('a changed uniform or buffer is a different tape; a destroyed buffer makes it unusable; discard is refused', async () => {
    const ctx = new GpuContext(env.ctx!.device, { poolBytes: 1 << 20 });
    const z = ctx.upload('z', new Float32Array(2 * N)), z2 = ctx.upload('z2', new Float32Array(2 * N));
    const x = new Float32Array(N).fill(1);
    const record = (a: number, out: GPUBuffer) => {
      ctx.startTape();
      step(ctx, x, a, out);
      return ctx.endTape() as StepTape;
    };
    record(0.5, z);
    const base = record(0.5, z);
    expect(tapeDifference(base, record(0.5, z))).toBeUndefined();
    expect(tapeDifference(base, record(0.25, z))).toMatch(/command 4 \(submit\): other uniform values/);
    expect(tapeDifference(base, record(0.5, z2))).toMatch(/command 2 \(clear\): another clear/);

    // Without a pool, a buffer handed back is destroyed.
    const bare = new GpuContext(env.ctx!.device, { poolBytes: 0 });
    bare.startTape();
    const gone = bare.buffer('gone', 64, 'any');
    bare.run(axpi(16, 1), [z, gone]);
    bare.submit();
    bare.release(gone);
    expect(bare.endTape()).toMatch(/destroyed during the step/);
    bare.destroy();

    ctx.startTape();
    ctx.run(axpi(16, 1), [z, z2]);
    ctx.discard();
    expect(ctx.endTape()).toMatch(/discard/);

    ctx.startTape();
    ctx.run(axpi(16, 1), [z, z2]);
    expect(ctx.endTape()).toMatch(/left unsubmitted/);
    ctx.destroy();
  });
});

describe.skipIf(!env.ctx)('the trainer replays its steps (tiny Qwen2, every op on our kernels)', () => {
  const cases = [
    { name: 'clip path, fp32', precision: 'fp32', clip: 1 },
    { name: 'early path (clip 0), fp32', precision: 'fp32', clip: 0 },
    { name: 'clip path, mixed precision', precision: 'mixed', clip: 1 },
  ] as const;
  for (const c of cases)
    it(`${c.name}: 7 steps replayed from step 4 equal 7 recorded steps bit for bit; an evaluation makes the next steps record again`, async () => {
      const runs = [];
      for (const stepReplay of [false, true]) {
        const t = await openTrainer({ backend: 'webgpu', precision: c.precision, clip: c.clip, stepReplay, trainDefaults: true });
        const w = t as unknown as WebGpuTrainer;
        const runner = w.runner as StagedSteps;
        expect(runner.replayable).toBe(true);
        const data = await trainBatches();
        const held = data.next().value!;
        const rs = [], notes = [];
        for (let i = 0; i < 7; i++) {
          // After step 4, an evaluation: its commands make the tape stale.
          if (i === 4) await w.evaluate([held]);
          rs.push(await t.train(data.next().value!));
          notes.push(w.replayNote ?? 'replayed');
        }
        console.log(`${c.name}, replay ${stepReplay}: ${notes.join(' | ')}`);
        if (stepReplay) {
          // Steps 1-3 recorded (the third the same as the second), 4 replayed, 5 recorded after the
          // evaluation, then replays again once a recording agrees with the one before.
          expect(notes.slice(0, 5).map((n) => (n === 'replayed' ? 'R' : 'r'))).toEqual(['r', 'r', 'r', 'R', 'r']);
          expect(notes[2]).toMatch(/the same as the step before/);
          expect(notes[6]).toBe('replayed');
          expect(runner.times.replays).toBeGreaterThanOrEqual(2);
        } else {
          expect(notes.every((n) => n === 'off')).toBe(true);
          expect(runner.times.replays).toBe(0);
        }
        runs.push({ rs, state: await snapshot(t) });
        await t.release();
      }
      const [recorded, replayed] = runs;
      expect(replayed.rs.map((r) => [r.loss, r.gradNorm, r.lossScale, r.skipped])).toEqual(recorded.rs.map((r) => [r.loss, r.gradNorm, r.lossScale, r.skipped]));
      expectSameState(recorded.state, replayed.state);
    });
});

describe.skipIf(!env.ctx)('ortfuse train (runTraining) with and without --no-step-replay', () => {
  it('the same losses and validation losses, bit for bit, with an evaluation every 3 steps', async () => {
    const tok = await getTokenizer('bytes');
    const opts: TrainOptions = { steps: 8, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2, evalEvery: 3, backend: 'webgpu' };
    const replayed = await runTraining(buildQwen2(TINY, { seed: 1 }), TEXT, tok, opts);
    const recorded = await runTraining(buildQwen2(TINY, { seed: 1 }), TEXT, tok, { ...opts, stepReplay: false });
    expect(replayed.map((r) => [r.loss, r.valLoss])).toEqual(recorded.map((r) => [r.loss, r.valLoss]));
    expect(replayed.filter((r) => r.valLoss !== undefined).length).toBeGreaterThanOrEqual(2);
  });
});
