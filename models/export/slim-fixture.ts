/**
 * Make a torch export small enough to commit as a test fixture, keeping what ortfuse reads:
 * drops each node's `pkg.torch.onnx.stack_trace` metadata (Python stack traces, most of the file's
 * non-weight bytes); keeps `pkg.torch.onnx.fx_node`, `name_scopes`, `class_hierarchy`, `namespace`.
 * With --structure-only every float initializer becomes zeros of the same shape (for fixtures that
 * test parameter discovery and fusion counts, not numerics; they compress to almost nothing).
 *
 *   npx tsx models/export/slim-fixture.ts in.onnx out.onnx [--structure-only]
 */
import { gzipSync } from 'node:zlib';
import * as fs from 'node:fs';
import { loadFile, saveBytes } from '../../src/onnx/io.js';
import { Tensor } from '../../src/ir/tensor.js';
import { DataType } from '../../src/onnx/schema.js';

const [input, output] = process.argv.slice(2);
const structureOnly = process.argv.includes('--structure-only');
const m = loadFile(input);
let dropped = 0;
for (const n of m.graph.allNodes()) {
  const props = n.extra.metadata_props as { key: string }[] | undefined;
  if (!props) continue;
  const kept = props.filter((p) => p.key !== 'pkg.torch.onnx.stack_trace');
  dropped += props.length - kept.length;
  n.extra.metadata_props = kept;
}
if (structureOnly)
  for (const v of m.graph.initializers) {
    const t = v.initializer!;
    if (t.dtype === DataType.FLOAT) v.initializer = Tensor.from(t.dtype, t.dims.slice(), new Float32Array(t.size));
  }
const bytes = saveBytes(m);
fs.writeFileSync(output, output.endsWith('.gz') ? gzipSync(bytes, { level: 9 }) : bytes);
console.log(`${output}: ${fs.statSync(output).size} bytes (${dropped} stack traces dropped${structureOnly ? ', weights zeroed' : ''})`);
