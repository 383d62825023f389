/**
 * The training API (src/training/, exported from the package entry): createTrainer + textBatches
 * reproduce `ortfuse train`'s losses bit for bit on the cpu backend; events; save/load resume to
 * bit-identical steps (in the CLI's checkpoint format); parameters(); one-line usage errors before
 * anything runs; the webgpu backend with ortfuse's onnxruntime-web and with the caller's `ort`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { createTrainer, demoModel, mobyDick, textBatches, toBatch, getTokenizer, save, OrtfuseError, type StepInfo } from '../src/index.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { runTraining } from '../src/runtime/train.js';
import { gpuEnv } from './webgpu-helpers.js';
import { loadSafetensors } from '../src/params/safetensors.js';

const text = mobyDick().slice(0, 100_000);
const opts = { lr: 3e-3, steps: 8, warmup: 2 };
const shape = { tokenizer: 'bytes' as const, batch: 2, seq: 32, seed: 5 };

async function losses(model = buildQwen2(TINY, { seed: 1 }), n = 8, config = {}): Promise<number[]> {
  const t = await createTrainer(model, { ...opts, ...config });
  const data = await textBatches(text, { ...shape, vocab: t.vocab });
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await t.step(data.train.next().value!)).loss);
  await t.dispose();
  return out;
}

describe('training API (cpu)', () => {
  it("reproduces `ortfuse train`'s losses and validation loss bit for bit; emits step and evaluate events", async () => {
    const cli = await runTraining(buildQwen2(TINY, { seed: 1 }), text, await getTokenizer('bytes'), { ...opts, batch: 2, seq: 32, seed: 5, fuse: true });
    const t = await createTrainer(buildQwen2(TINY, { seed: 1 }), opts);
    expect(t.options).toMatchObject({ backend: 'cpu', lr: 3e-3, steps: 8, warmup: 2, weightDecay: 0.01, clip: 1, fuse: true });
    expect(t.vocab).toBe(512);
    expect(t.report!.passes.length).toBeGreaterThan(0);
    const data = await textBatches(text, { ...shape, vocab: t.vocab });
    const events: StepInfo[] = [];
    const evals: number[] = [];
    t.on('step', (r) => events.push(r));
    const off = t.on('evaluate', (e) => evals.push(e.loss));
    for (let i = 0; i < 8; i++) {
      const r = await t.step(data.train.next().value!);
      expect(r).toMatchObject({ step: i + 1 });
      expect(r.tokensPerSecond).toBeGreaterThan(0);
      expect(r.peakRssMiB).toBeGreaterThan(0);
      expect(r.peakGpuMiB).toBeUndefined();
    }
    expect(t.globalStep).toBe(8);
    expect(events.map((r) => r.loss)).toEqual(cli.map((r) => r.loss));
    expect(events.map((r) => r.lr)).toEqual(cli.map((r) => r.lr));
    expect(events.map((r) => r.gradNorm)).toEqual(cli.map((r) => r.gradNorm));
    const val = await t.evaluate(data.validation);
    expect(val).toBe(cli[cli.length - 1].valLoss);
    expect(evals).toEqual([val]);
    off();
    await t.evaluate(data.validation);
    expect(evals.length).toBe(1);
    await t.dispose();
  });

  it('save at step 4 + load into a fresh trainer continues bit-identically; parameters() are copies by name', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-'));
    const file = path.join(dir, 'run.ckpt');
    const full = await losses(buildQwen2(TINY, { seed: 2 }));
    const a = await createTrainer(buildQwen2(TINY, { seed: 2 }), opts);
    const data = await textBatches(text, { ...shape });
    const before = await a.parameters();
    for (let i = 0; i < 4; i++) await a.step(data.train.next().value!);
    const saved: string[] = [];
    a.on('save', (e) => saved.push(`${e.step} ${e.file}`));
    await a.save(file);
    expect(saved).toEqual([`4 ${file}`]);
    const after = await a.parameters();
    expect([...after.keys()]).toEqual(a.parameterNames);
    expect([...after.values()].reduce((s, p) => s + p.length, 0)).toBe(a.parameterCount);
    const name = a.parameterNames[0];
    expect(after.get(name)).not.toEqual(before.get(name));
    after.get(name)!.fill(0); // a copy: the trainer is unaffected
    await a.dispose();
    const b = await createTrainer(buildQwen2(TINY, { seed: 2 }), opts);
    await b.load(file);
    expect(b.globalStep).toBe(4);
    const rest: number[] = [];
    for (let i = 0; i < 4; i++) rest.push((await b.step(data.train.next().value!)).loss);
    expect(rest).toEqual(full.slice(4));
    await b.dispose();
    await expect(b.step(data.train.next().value!)).rejects.toThrow(/the trainer was disposed/);
  });

  it("schedule, minLrRatio and micro-batches (gradient accumulation) follow `ortfuse train --schedule linear --min-lr-ratio 0.2 --grad-accum 2` bit for bit; a CLI checkpoint resumes here", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-'));
    const run = { ...opts, schedule: 'linear' as const, minLrRatio: 0.2 };
    const cliOpts = { ...run, batch: 2, seq: 32, seed: 5, fuse: true, gradAccum: 2 };
    const tok = await getTokenizer('bytes');
    const cli = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, cliOpts);
    const t = await createTrainer(buildQwen2(TINY, { seed: 1 }), run);
    const data = await textBatches(text, shape);
    const micro = () => [data.train.next().value!, data.train.next().value!];
    const api: { loss: number; lr: number }[] = [];
    for (let i = 0; i < 8; i++) api.push(await t.step(micro()));
    expect(api.map((r) => r.loss)).toEqual(cli.map((r) => r.loss));
    expect(api.map((r) => r.lr)).toEqual(cli.map((r) => r.lr));
    await t.dispose();
    // `ortfuse train` stopped at step 4 with a checkpoint; the library loads it and continues.
    const ck = path.join(dir, 'cli.ckpt');
    await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...cliOpts, stopAfter: 4, checkpoint: ck });
    const u = await createTrainer(buildQwen2(TINY, { seed: 1 }), run);
    await u.load(ck);
    const rest = await textBatches(text, shape);
    for (let i = 0; i < 8; i++) rest.train.next();
    const tail: number[] = [];
    for (let i = 0; i < 4; i++) tail.push((await u.step([rest.train.next().value!, rest.train.next().value!])).loss);
    expect(tail).toEqual(cli.slice(4).map((r) => r.loss));
    await u.dispose();
    const v = await createTrainer(buildQwen2(TINY, { seed: 1 }), { ...run, lr: 2e-3 });
    await expect(v.load(ck)).rejects.toThrow(/the checkpoint was written with lr 0.003; this trainer has lr 0.002/);
    await v.dispose();
    const w = await createTrainer(buildQwen2(TINY, { seed: 1 }), { ...run, freeze: 'lm_head.weight' });
    await expect(w.load(ck)).rejects.toThrow(/the checkpoint is of another model \(it has parameter 'lm_head.weight', which this one does not\)/);
    await w.dispose();
  });

  it('takes the model as a file path or bytes, batches from token rows, and trains with fuse: false', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-'));
    const { save } = await import('../src/index.js');
    const file = path.join(dir, 'tiny.onnx');
    save(demoModel(), file);
    const fromFile = await losses(file, 3);
    expect(await losses(fs.readFileSync(file), 3)).toEqual(fromFile);
    expect(await losses(demoModel(), 3)).toEqual(fromFile);
    const unfused = await losses(demoModel(), 3, { fuse: false });
    for (let i = 0; i < 3; i++) expect(Math.abs(unfused[i] - fromFile[i])).toBeLessThan(1e-4);
    // fuseMlp (--fuse-mlp): each MLP one SwiGLUMLP op; the same losses.
    const mlp = await createTrainer(demoModel(), { ...opts, fuseMlp: true });
    expect(mlp.report!.passes.reduce((n, p) => n + (p.counts['fuse-swiglu-mlp'] ?? 0), 0)).toBe(TINY.num_hidden_layers);
    await mlp.dispose();
    const fusedMlp = await losses(demoModel(), 3, { fuseMlp: true });
    for (let i = 0; i < 3; i++) expect(Math.abs(fusedMlp[i] - fromFile[i])).toBeLessThan(1e-4);
    const t = await createTrainer(demoModel());
    const r = await t.step(toBatch([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], [[1, 2, 3, -100, -100, -100], [7, 8, 9, 10, 11, 12]]));
    expect(r.loss).toBeGreaterThan(5);
    await t.dispose();
  });

  it("exportModel/saveModel: the export with the trained weights gives the trainer's loss in an onnxruntime-node session; saveWeights: safetensors under the torch names", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'api-'));
    const t = await createTrainer(demoModel(), opts);
    const data = await textBatches(text, shape);
    for (let i = 0; i < 5; i++) await t.step(data.train.next().value!);
    const b = data.validation[0];
    const want = await t.evaluate([b]);
    const feeds = { input_ids: new ort.Tensor('int64', b.inputIds, [b.batch, b.seq]), labels: new ort.Tensor('int64', b.labels, [b.batch, b.seq]) };
    const lossOf = async (bytes: Uint8Array) => {
      const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
      const loss = Number((await session.run(feeds)).loss.data[0]);
      await session.release();
      return loss;
    };
    const exported = await t.exportModel();
    expect(exported.graph.outputs.map((v) => v.name)).toEqual(['loss', 'logits']); // the export's graph, not the fused one
    expect(Math.abs((await lossOf(save(exported))) - want)).toBeLessThan(1e-4);
    await t.saveModel(path.join(dir, 'trained.onnx'));
    expect(Math.abs((await lossOf(fs.readFileSync(path.join(dir, 'trained.onnx')))) - want)).toBeLessThan(1e-4);
    expect(await lossOf(save(demoModel()))).toBeGreaterThan(want + 0.5);
    await t.saveWeights(path.join(dir, 'trained.safetensors'));
    const { tensors, metadata } = loadSafetensors(path.join(dir, 'trained.safetensors'));
    expect(metadata.step).toBe('5');
    const p = await t.parameters();
    expect(tensors.get('model.norm.weight')!.data).toEqual(p.get('model.norm.weight'));
    await t.dispose();
  });

  it('a default torch export (tied, sdpa): trains from its file; exportModel keeps its graph and gives the trainer\'s loss', async () => {
    const t = await createTrainer(path.join(import.meta.dirname, '../models/fixtures/default/qwen2-default-tied.onnx'), opts);
    expect(t.parameterReport.method).toBe('torch-record');
    expect(t.parameterNames).toContain('model.embed_tokens.weight');
    const data = await textBatches(text, { ...shape, seq: 16, vocab: t.vocab });
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) losses.push((await t.step(data.train.next().value!)).loss);
    expect(losses[3]).toBeLessThan(losses[0]);
    const b = data.validation[0];
    const want = await t.evaluate([b]);
    const session = await ort.InferenceSession.create(save(await t.exportModel()), { logSeverityLevel: 3 });
    const out = await session.run({ input_ids: new ort.Tensor('int64', b.inputIds, [b.batch, b.seq]), labels: new ort.Tensor('int64', b.labels, [b.batch, b.seq]) });
    expect(Math.abs(Number(out.loss.data[0]) - want)).toBeLessThan(1e-5);
    await Promise.all([session.release(), t.dispose()]);
  });

  it('trains only what trainable/freeze select; the parameter report says so', async () => {
    const t = await createTrainer(demoModel(), { ...opts, freeze: 'model.layers.0.*', trainable: ['model.layers.*', 'model.norm.weight'] });
    expect(t.parameterNames).toEqual([...t.parameterNames].filter((n) => n.startsWith('model.layers.1.') || n === 'model.norm.weight'));
    expect(t.parameterNames.length).toBe(13);
    expect(t.parameterReport.frozen.map((p) => p.name)).toContain('lm_head.weight');
    const before = await t.parameters();
    const data = await textBatches(text, shape);
    await t.step(data.train.next().value!);
    const after = await t.parameters();
    for (const [name, v] of after) expect(v).not.toEqual(before.get(name));
    await t.dispose();
    await expect(createTrainer(demoModel(), { freeze: 'nothing.*' })).rejects.toThrow(/--freeze 'nothing\.\*' matches no parameter/);
  });

  it('refuses bad options, batches and overlapping calls with one line before running', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ lr: -1 }, /option lr must be a number > 0 \(got -1\)/],
      [{ steps: 0 }, /option steps must be an integer ≥ 1/],
      [{ warmup: 20, steps: 10 }, /warmup \(20\) is longer than the schedule/],
      [{ clip: Number.NaN }, /option clip must be/],
      [{ backend: 'cuda' }, /option backend must be 'cpu' or 'webgpu'/],
      [{ kernels: 'all' }, /option kernels is an option of backend 'webgpu'/],
      [{ backend: 'webgpu', threads: 2 }, /option threads is an option of backend 'cpu'/],
      [{ backend: 'webgpu', batch: 2 }, /options batch and seq go together/],
      [{ learningRate: 1 }, /unknown option 'learningRate'/],
      [{ freeze: [''] }, /option freeze must be a glob or an array of globs/],
      [{ schedule: 'step' }, /option schedule must be 'cosine', 'linear' or 'constant'/],
      [{ minLrRatio: 2 }, /option minLrRatio must be a number between 0 and 1/],
      [{ backend: 'webgpu', ort: {} }, /option ort must be the onnxruntime-web module/],
      [{ graphCapture: true, batch: 2, seq: 16 }, /option graphCapture is an option of backend 'webgpu'/],
      [{ backend: 'webgpu', graphCapture: true }, /option graphCapture needs batch and seq/],
      [{ backend: 'webgpu', graphCapture: true, batch: 2, seq: 16, memoryBudget: 2 ** 30 }, /graphCapture .* does not combine with memoryBudget/],
      [{ backend: 'webgpu', graphCapture: 'yes' }, /option graphCapture must be true or false/],
      [{ stepReplay: false }, /option stepReplay is an option of backend 'webgpu'/],
      [{ backend: 'webgpu', stepReplay: 'no' }, /option stepReplay must be true or false/],
      [{ fuseMlp: 'yes' }, /option fuseMlp must be true or false/],
      [{ fuse: false, fuseMlp: true }, /option fuseMlp needs fuse/],
      [{ fuseAttention: 'yes' }, /option fuseAttention must be true or false/],
      [{ fuse: false, fuseAttention: true }, /option fuseAttention needs fuse/],
      [{ fuseLinear: 1 }, /option fuseLinear must be true or false/],
      [{ fuse: false, fuseLinear: true }, /option fuseLinear needs fuse/],
    ];
    for (const [config, msg] of bad) {
      const e = await createTrainer(demoModel(), config).catch((x) => x);
      expect(e).toBeInstanceOf(OrtfuseError);
      expect(e.code).toBe('usage');
      expect(e.message).toMatch(msg);
    }
    await expect(createTrainer('/nonexistent/model.onnx')).rejects.toMatchObject({ code: 'io' });
    await expect(textBatches(text, { tokenizer: 'qwen', vocab: 512, seq: 16 })).rejects.toThrow(/emits id \d+, but the model's vocabulary has only 512/);
    const t = await createTrainer(demoModel());
    await expect(t.step(toBatch([[1, 2, 600]]))).rejects.toThrow(/token id 600 at position 2 is outside the model's vocabulary \(0\.\.511\)/);
    await expect(t.step({ inputIds: new BigInt64Array(3), labels: new BigInt64Array(3), batch: 2, seq: 2 })).rejects.toThrow(/batch 2x2 needs 4 input ids/);
    await expect(t.evaluate([])).rejects.toThrow(/non-empty array/);
    const b = toBatch([[1, 2, 3, 4]]);
    const first = t.step(b);
    await expect(t.step(b)).rejects.toThrow(/step\(\) called while step\(\) is running/);
    await first;
    await expect(t.load(path.join(os.tmpdir(), 'no-such-checkpoint.ckpt'))).rejects.toThrow(/no such file/);
    await t.dispose();
  });
});

const env = await gpuEnv();

describe.skipIf(!env.ctx)('training API (webgpu, dawn.node)', () => {
  it("trains with the cpu backend's losses (within 1e-4), with ortfuse's onnxruntime-web and with the caller's", async () => {
    const cpu = await losses(buildQwen2(TINY, { seed: 1 }), 3);
    const gpu = await losses(buildQwen2(TINY, { seed: 1 }), 3, { backend: 'webgpu', batch: 2, seq: 32 });
    for (let i = 0; i < 3; i++) expect(Math.abs(gpu[i] - cpu[i])).toBeLessThan(1e-4);
    const ort = await import('onnxruntime-web/webgpu');
    const t = await createTrainer(buildQwen2(TINY, { seed: 1 }), { ...opts, backend: 'webgpu', ort, kernels: 'none', batch: 2, seq: 32 });
    const data = await textBatches(text, shape);
    for (let i = 0; i < 3; i++) {
      const r = await t.step(data.train.next().value!);
      expect(Math.abs(r.loss - cpu[i])).toBeLessThan(1e-4);
      expect(r.peakGpuMiB).toBeGreaterThan(0.4); // at least the parameters and moments (107k x 3 floats)
    }
    // The caller's ORT-web holds the trainer's device: their sessions run beside it.
    expect(ort.env.webgpu.device).toBeDefined();
    await expect(t.step(toBatch([[1, 2, 3, 4]]))).rejects.toThrow(/specialised to batches of 2x32 \(options batch, seq\), not 1x4/);
    const p = await t.parameters();
    expect([...p.keys()]).toEqual(t.parameterNames);
    await t.dispose();
  }, 300_000); // SwiftShader on a busy 2-core machine: ~40 s idle, ~110 s measured under load
});
