import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadFile } from './onnx/io.js';
import { cleanupPipeline, runPipeline } from './pipeline.js';
import { p, v } from './rewrite/pattern.js';
import { defineRule, rulePass } from './rewrite/rule.js';
import { maxAbsDiff, opCounts, randomFeeds, runOrt } from './rewrite/testing.js';

const FIXTURES = ['qwen2-tiny', 'qwen2-tiny-untied', 'qwen2-tiny-nll', 'qwen2-tiny-op23'].map((s) => `models/fixtures/${s}.onnx`);

describe('cleanup pipeline on the torch-exported Qwen2 fixtures', () => {
  for (const file of FIXTURES)
    it.skipIf(!existsSync(file))(file, async () => {
      const m = loadFile(file);
      // ORT's RotaryEmbedding-23 rejects batch > 1 (models/fixtures/README.md).
      const feeds = randomFeeds(m, 3, { batch: file.includes('op23') ? 1 : 2, seq: 7 }, 500);
      const expected = await runOrt(m, feeds);
      const report = runPipeline(m, cleanupPipeline(), { checkEachPass: true });
      expect(report.passes.map((r) => r.name)).toEqual(['constant-fold', 'remove-noops', 'cse', 'dce']);
      const actual = await runOrt(m, feeds);
      expect(actual.map((t, i) => maxAbsDiff(t, expected[i]))).toEqual([0, 0]);
      if (file.includes('op23')) expect(report.passes[2].counts).toEqual({ nodes: 6 }); // duplicated Cos/Sin of the RoPE angles
      const ops = opCounts(m);
      const again = runPipeline(m, cleanupPipeline(), { checkEachPass: true });
      expect(again.passes.every((r) => !r.modified)).toBe(true);
      expect(opCounts(m)).toEqual(ops);
    });
});

describe('runPipeline', () => {
  it('collects --explain entries of rule passes', () => {
    const m = loadFile(FIXTURES[0]);
    const x = v('x');
    const gelu = defineRule({ name: 'test-tanh-gate', pattern: p.Mul(x, p.Tanh(x)), rewrite: (b, mm) => mm.values.x });
    const report = runPipeline(m, [rulePass('test', [gelu])], { explain: true, checkEachPass: true });
    expect(report.passes[0]).toMatchObject({ name: 'test', modified: false, counts: {} });
    expect(report.explanations).toHaveLength(1);
    expect(report.explanations[0]).toMatchObject({ rule: 'test-tanh-gate', total: 2 });
    expect(report.explanations[0].reason).toMatch(/^Mul input \d: expected Tanh, found \w+ at node '.+'$/);
  });
});
