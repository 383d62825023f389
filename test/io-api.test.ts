/** The library API: load, save, inspect, optimize; its bytes run in onnxruntime-node and -web. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import * as api from '../src/index.js';
import { inspect, load, optimize, OrtfuseError, save, type Pass } from '../src/index.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-api-'));
  ortWeb.env.wasm.numThreads = 1;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const ids = (ort: typeof ortNode | typeof ortWeb) =>
  new ort.Tensor('int64', BigInt64Array.from({ length: 24 }, (_, i) => BigInt((i * 131 + 7) % TINY.vocab_size)), [2, 12]);

describe('library API', () => {
  it('exports the documented names', () => {
    for (const name of ['load', 'save', 'optimize', 'inspect', 'validate', 'OrtfuseError', 'EXIT_CODES', 'createModel', 'GraphBuilder', 'Model', 'Graph', 'Node', 'Value', 'Tensor', 'checkModel', 'runPipeline', 'defaultPipeline', 'DataType'])
      expect(api, name).toHaveProperty(name);
  });

  it('optimize(bytes).bytes() goes straight into InferenceSession.create of onnxruntime-node and -web', async () => {
    const original = save(buildQwen2(TINY, { seed: 3 }));
    expect(original).toBeInstanceOf(Uint8Array);
    const { model, report, bytes } = optimize(original);
    expect(report.checked).toBe(true);
    expect(report.nodesBefore).toBeGreaterThan(100);
    expect(report.passes.map((p) => p.name)).toEqual(api.defaultPipeline().map((p) => p.name));
    expect(inspect(model).inputs.map((v) => v.shape)).toEqual([['batch', 'seq'], ['batch', 'seq']]);
    const ref = await ortNode.InferenceSession.create(original);
    const expected = (await ref.run({ input_ids: ids(ortNode), labels: ids(ortNode) })).loss.data[0] as number;
    const sn = await ortNode.InferenceSession.create(bytes());
    const ln = (await sn.run({ input_ids: ids(ortNode), labels: ids(ortNode) })).loss.data[0] as number;
    const sw = await ortWeb.InferenceSession.create(bytes());
    const lw = (await sw.run({ input_ids: ids(ortWeb), labels: ids(ortWeb) })).loss.data[0] as number;
    expect(Math.abs(ln - expected)).toBeLessThan(1e-5);
    expect(Math.abs(lw - expected)).toBeLessThan(1e-4);
    expect(expected).toBeGreaterThan(Math.log(TINY.vocab_size) - 1);
  });

  it('load and save files, with and without external data', () => {
    const m = buildQwen2(TINY, { seed: 1 });
    const a = save(m, path.join(dir, 'a.onnx'));
    expect(a).toEqual({ model: path.join(dir, 'a.onnx'), data: undefined });
    const b = save(load(a.model), path.join(dir, 'b.onnx'), { externalData: true });
    expect(b.data).toBe(path.join(dir, 'b.onnx.data'));
    expect(fs.statSync(b.data!).size).toBeGreaterThan(400_000);
    expect(fs.statSync(b.model).size).toBeLessThan(100_000);
    const fromFile = save(load(b.model));
    expect(Buffer.from(fromFile).equals(Buffer.from(save(load(fs.readFileSync(a.model)))))).toBe(true);
  });

  it('optimize runs given passes, checks each one, and reports per pass', () => {
    const calls: string[] = [];
    const touch: Pass = { name: 'touch', run: (m) => (calls.push(m.graph.name), { modified: false, counts: { seen: m.graph.nodes.length } }) };
    const r = optimize(buildQwen2(TINY), { passes: [touch, touch], checkEachPass: true });
    expect(calls).toHaveLength(2);
    expect(r.report.passes).toHaveLength(2);
    expect(r.report.passes[0].counts.seen).toBe(r.report.nodesBefore);
    const breaker: Pass = { name: 'breaker', run: (m) => (m.graph.nodes.reverse(), { modified: true, counts: {} }) };
    expect(() => optimize(buildQwen2(TINY), { passes: [breaker] })).toThrow(/after optimization: .*not defined before it/);
  });

  it('errors are OrtfuseErrors with a code', () => {
    expect(() => load(new Uint8Array([1, 2, 3]))).toThrow(OrtfuseError);
    try {
      load(path.join(dir, 'nope.onnx'));
    } catch (e) {
      expect((e as OrtfuseError).code).toBe('io');
    }
    expect.assertions(2);
  });
});
