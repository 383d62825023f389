/**
 * Inference on the real torch-exported Qwen2 fixtures (models/fixtures/*.onnx): every node output
 * gets a full type with the exporter's symbolic dims, both as loaded and with the exporter's
 * value_info removed, and the types agree with what onnxruntime-node computes at batch 2, seq 16.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadFile, saveBytes } from '../../onnx/io.js';
import type { Model, Value } from '../graph.js';
import { formatType } from '../types.js';
import { dimEq, evalDim } from './dims.js';
import { inferShapes, isFullType } from './index.js';
import { compareWithOrt } from './test-helpers.js';

const DIR = path.resolve(import.meta.dirname, '../../../models/fixtures');
const FILES = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith('.onnx')).sort() : [];
const BATCH = 2;
const SEQ = 16;
/** ORT 1.30's RotaryEmbedding kernel rejects this export at batch > 1 (models/fixtures/export-log.txt). */
const ORT_BATCH: Record<string, number> = { 'qwen2-tiny-op23.onnx': 1 };

function nodeOutputs(m: Model): Value[] {
  return [...m.graph.allNodes()].flatMap((n) => n.outputs).filter((v) => v.name !== '');
}

/** Feeds at batch 2, seq 16 and the bindings of the inputs' symbolic dims. */
function feedsFor(m: Model, batch: number): { feeds: Record<string, ort.Tensor>; bindings: Record<string, number> } {
  const feeds: Record<string, ort.Tensor> = {};
  const bindings: Record<string, number> = {};
  for (const v of m.graph.inputs) {
    if (v.initializer) continue;
    const shape = v.tensorType?.shape ?? [];
    const dims = shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? batch : SEQ));
    shape.forEach((d, i) => typeof d === 'string' && (bindings[d] = dims[i]));
    const n = dims.reduce((a, b) => a * b, 1);
    const values = BigInt64Array.from({ length: n }, (_, k) =>
      /mask/.test(v.name) ? 1n : /position/.test(v.name) ? BigInt(k % dims[dims.length - 1]) : BigInt((k * 7) % 5));
    feeds[v.name] = new ort.Tensor('int64', values, dims);
  }
  return { feeds, bindings };
}

describe.skipIf(FILES.length === 0)('inference on the exported fixtures', () => {
  for (const file of FILES) {
    it(`${file}: every node output typed, exporter dims kept, no conflicts`, () => {
      const m = loadFile(path.join(DIR, file));
      const report = inferShapes(m);
      expect(report.unknownOps).toEqual([]);
      expect(report.failures.map((f) => f.message)).toEqual([]);
      expect(report.conflicts.map((c) => c.message)).toEqual([]);
      const partial = nodeOutputs(m).filter((v) => !isFullType(v.type)).map((v) => `${v.name} ${formatType(v.type)}`);
      expect(partial).toEqual([]);
    });

    it(`${file}: with value_info removed, inference recovers the exporter's types`, () => {
      const m = loadFile(path.join(DIR, file));
      const types = new Map(nodeOutputs(m).map((v) => [v, v.type]));
      for (const v of types.keys()) if (!v.isGraphOutput()) v.type = undefined;
      inferShapes(m);
      const differ: string[] = [];
      for (const [v, t] of types) {
        if (!isFullType(v.type)) differ.push(`${v.name}: ${formatType(v.type)} not full (exporter ${formatType(t)})`);
        else if (t?.kind === 'tensor' && t.shape && v.tensorType) {
          const got = v.tensorType;
          const same = got.elemType === t.elemType && got.shape!.length === t.shape.length && t.shape.every((d, i) => d === null || dimEq(d, got.shape![i]));
          if (!same) differ.push(`${v.name} (${v.producer?.opType}): ${formatType(got)} vs exporter ${formatType(t)}`);
        }
      }
      expect(differ).toEqual([]);
    });

    const batch = ORT_BATCH[file] ?? BATCH;
    it(`${file}: inferred shapes match onnxruntime-node at batch ${batch}, seq ${SEQ}`, async () => {
      const m = loadFile(path.join(DIR, file));
      const { feeds, bindings } = feedsFor(m, batch);
      const r = await compareWithOrt(m, { feeds, bindings });
      expect(r.mismatches).toEqual([]);
      expect(r.compared).toBeGreaterThanOrEqual(m.graph.nodes.length);
      // The inferred types, saved as value_info, are accepted by ORT's own inference.
      const session = await ort.InferenceSession.create(saveBytes(m), { graphOptimizationLevel: 'disabled' });
      const out = await session.run(feeds);
      const logits = m.graph.outputs.find((v) => v.name === 'logits')!;
      expect(out.logits.dims).toEqual([batch, SEQ, evalDim(logits.tensorType!.shape![2], bindings)]);
      await session.release();
    });
  }
});
