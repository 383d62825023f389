/**
 * Runs the fuzz attempts of fuzz.test.ts in a child process (so a hang can be detected and
 * killed): seeded truncations and byte flips of a small model, each through `ortfuse optimize`.
 * Prints one JSON line per attempt.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../src/cli/program.js';
import { checkModel, createModel, Graph, GraphBuilder, Tensor } from '../src/ir/index.js';
import { loadFile, saveBytes } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { rng } from '../src/random.js';

/** x -> MatMul(w) -> Relu -> If(sum > 0: y + bias, else y - bias), with a Constant node. */
export function fuzzFixture(): Uint8Array {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, ['batch', 4]);
  const w = b.initializer('w', Tensor.from(DataType.FLOAT, [4, 4], Array.from({ length: 16 }, (_, i) => i / 16 - 0.3)));
  const bias = b.op.Constant({ value: Tensor.from(DataType.FLOAT, [4], [0.1, 0.2, 0.3, 0.4]) });
  const y = b.op.Relu(b.op.MatMul(x, w));
  const cond = b.op.Greater(b.op.ReduceSum(y, { keepdims: 0 }), b.constant(0, { dtype: DataType.FLOAT, name: 'zero' }));
  const branch = (name: string, f: (g: GraphBuilder) => any) => {
    const g = new Graph(m);
    g.name = name;
    const gb = new GraphBuilder(g);
    gb.output(f(gb));
    return g;
  };
  const thenG = branch('then', (g) => g.op.Add(y, bias));
  const elseG = branch('else', (g) => g.op.Sub(y, bias));
  const [z] = b.op.call('If', [cond], { then_branch: thenG, else_branch: elseG });
  thenG.owner = elseG.owner = z.producer;
  b.output(z, 'z');
  return saveBytes(m);
}

function mutate(src: Uint8Array, seed: number): { bytes: Uint8Array; what: string } {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  let bytes = Uint8Array.from(src);
  const what: string[] = [];
  const kind = seed % 4;
  if (kind === 0 || kind === 3) {
    const len = int(bytes.length);
    bytes = bytes.subarray(0, len);
    what.push(`truncate@${len}`);
  }
  if (kind === 1 || kind === 3) {
    for (let k = 1 + int(4); k > 0 && bytes.length; k--) {
      const i = int(bytes.length);
      const v = 1 + int(255);
      bytes[i] ^= v;
      what.push(`xor@${i}=${v}`);
    }
  }
  if (kind === 2 && bytes.length) {
    const i = int(bytes.length);
    const bit = int(8);
    bytes[i] ^= 1 << bit;
    what.push(`bit@${i}.${bit}`);
  }
  return { bytes, what: what.join(',') };
}

const [count, first] = process.argv.slice(2).map(Number);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-fuzz-'));
const fixture = fuzzFixture();
try {
  for (let seed = first; seed < first + count; seed++) {
    const { bytes, what } = mutate(fixture, seed);
    const inFile = path.join(dir, 'in.onnx');
    const outFile = path.join(dir, 'out.onnx');
    fs.rmSync(outFile, { force: true });
    fs.writeFileSync(inFile, bytes);
    let stderr = '';
    const t0 = performance.now();
    const code = await runCli(['optimize', inFile, '-o', outFile], { stdout: () => {}, stderr: (t) => void (stderr += t), cwd: dir });
    let result = 'error';
    if (code === 0) {
      try {
        const problems = checkModel(loadFile(outFile));
        result = problems.length ? `checker: ${problems[0].message}` : 'valid';
      } catch (e) {
        result = `reload failed: ${(e as Error).message}`;
      }
    } else if (fs.existsSync(outFile)) result = 'output written despite the error';
    const ms = performance.now() - t0;
    process.stdout.write(`${JSON.stringify({ seed, what, code, stderr, result, ms })}\n`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
