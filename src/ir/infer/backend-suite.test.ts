/**
 * ONNX's own backend node tests (Debian's libonnx-testdata): for every test whose ops all have a
 * rule, forget the declared output types, infer, and check that inference is never wrong (no
 * conflict with the declared type) and exactly right wherever the shape does not depend on
 * runtime input data.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadFile } from '../../onnx/io.js';
import { formatType, sameType } from '../types.js';
import { inferShapes, mergeType, ONNX_RULES } from './index.js';

const ROOT = '/usr/share/libonnx-testdata/data/node';

describe.skipIf(!fs.existsSync(ROOT))('ONNX backend node tests', () => {
  it('inferred output types agree with the declared ones', () => {
    let exact = 0;
    let total = 0;
    const wrong: string[] = [];
    for (const dir of fs.readdirSync(ROOT).sort()) {
      const file = `${ROOT}/${dir}/model.onnx`;
      if (!fs.existsSync(file)) continue;
      const m = loadFile(file);
      if (!m.graph.nodes.every((n) => !n.domain && n.opType in ONNX_RULES)) continue;
      total++;
      const declared = m.graph.outputs.map((v) => v.type);
      for (const v of m.graph.outputs) v.type = undefined;
      const report = inferShapes(m);
      let same = report.failures.length === 0;
      m.graph.outputs.forEach((v, i) => {
        const conflict = mergeType(declared[i], v.type).conflict;
        if (conflict) wrong.push(`${dir} ${v.name}: ${conflict}`);
        if (declared[i]?.kind === 'tensor' && !sameType(declared[i], v.type)) same = false;
      });
      for (const f of report.failures) wrong.push(`${dir}: ${f.message} (${formatType(declared[0])})`);
      if (same) exact++;
    }
    expect(wrong).toEqual([]);
    expect(total).toBeGreaterThan(700);
    // The rest depend on runtime data (a Reshape/Slice/Pad/... shape fed as a graph input).
    expect(exact).toBeGreaterThanOrEqual(650);
  });
});
