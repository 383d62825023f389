/**
 * Bad input through the CLI (in-process, real files in a temp dir): every case ends in one line
 * `ortfuse: error: ...` naming the problem, the exit code of its kind, no stack trace, and no file
 * written or changed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';
import { COMMANDS } from '../src/cli/commands.js';
import { EXIT_CODES } from '../src/errors.js';
import { createModel, GraphBuilder, Tensor, type Model } from '../src/ir/index.js';
import { saveBytes, saveFile } from '../src/onnx/io.js';
import { DataType, ModelProtoType } from '../src/onnx/schema.js';


/** x[batch,4] -> MatMul(w) -> Relu -> Add(b) -> y, with a 4 KiB initializer for external data. */
function smallModel(): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, ['batch', 32]);
  const w = b.initializer('w', Tensor.from(DataType.FLOAT, [32, 32], Array.from({ length: 1024 }, (_, i) => (i % 7) / 7)));
  const h = b.op.Relu(b.op.MatMul(x, w));
  b.output(b.op.Add(h, b.constant(Array.from({ length: 32 }, () => 0.5), { dtype: DataType.FLOAT })), 'y');
  return m;
}

/** Decode, edit and re-encode a model's proto. */
function editProto(bytes: Uint8Array, edit: (p: any) => void): Uint8Array {
  const p: any = ModelProtoType.decode(bytes);
  edit(p);
  return ModelProtoType.encode(p).finish();
}

let dir: string;
const listing = () => fs.readdirSync(dir).sort().map((f) => `${f}:${fs.statSync(path.join(dir, f)).size}`);
const write = (name: string, data: Uint8Array | string) => {
  fs.writeFileSync(path.join(dir, name), data);
  return name;
};

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-bad-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Run a failing case: checks the contract and that nothing in the temp dir changed. */
async function expectFailure(argv: string[], code: keyof typeof EXIT_CODES, pattern: RegExp) {
  const before = listing();
  const bytesBefore = new Map(fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  const r = await cli(dir, ...argv);
  expect(r.stderr).toMatch(/^ortfuse: error: [^\n]+\n$/);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stdout).toBe('');
  expect(r.code).toBe(EXIT_CODES[code]);
  expect(listing()).toEqual(before);
  for (const [f, b] of bytesBefore) expect(fs.readFileSync(path.join(dir, f)).equals(b)).toBe(true);
  return r;
}

describe('optimize on bad input', () => {
  const good = () => saveBytes(smallModel());

  it('truncated bytes', async () => {
    const b = good();
    write('trunc.onnx', b.subarray(0, Math.floor(b.length / 2)));
    await expectFailure(['optimize', 'trunc.onnx'], 'parse', /trunc\.onnx: not a valid ONNX model \(protobuf decoding failed: /);
  });

  it('corrupt bytes', async () => {
    const b = Buffer.from(good());
    b.fill(0xff, 0, 8);
    write('corrupt.onnx', b);
    await expectFailure(['optimize', 'corrupt.onnx'], 'parse', /corrupt\.onnx: not a valid ONNX model/);
  });

  it('a PNG and a text file', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\b\x06\0\0\0')]);
    write('image.png', png);
    await expectFailure(['optimize', 'image.png'], 'parse', /image\.png: not a valid ONNX model/);
    write('notes.txt', 'hello, this is not a model\n');
    await expectFailure(['optimize', 'notes.txt'], 'parse', /notes\.txt: not a valid ONNX model/);
  });

  it('an empty file', async () => {
    write('empty.onnx', '');
    await expectFailure(['optimize', 'empty.onnx'], 'parse', /empty\.onnx: file is empty/);
  });

  it('a directory and a missing file', async () => {
    fs.mkdirSync(path.join(dir, 'adir'), { recursive: true });
    await expectFailure(['optimize', 'adir'], 'io', /adir: is a directory/);
    await expectFailure(['inspect', 'missing.onnx'], 'io', /missing\.onnx: no such file/);
    await expectFailure(['optimize', 'missing.onnx'], 'io', /missing\.onnx: no such file/);
  });

  it('missing and too short external data', async () => {
    saveFile(smallModel(), path.join(dir, 'ext.onnx'), { externalData: true });
    const data = path.join(dir, 'ext.onnx.data');
    const full = fs.readFileSync(data);
    fs.writeFileSync(data, full.subarray(0, 100));
    await expectFailure(['optimize', 'ext.onnx', '-o', 'out.onnx'], 'io', /ext\.onnx: tensor 'w' reads bytes 0\.\.4096 of 'ext\.onnx\.data', which has only 100/);
    fs.rmSync(data);
    await expectFailure(['optimize', 'ext.onnx'], 'io', /tensor 'w' needs external data file 'ext\.onnx\.data', which is missing/);
    fs.rmSync(path.join(dir, 'ext.onnx'));
  });

  it('a graph with a cycle', async () => {
    // Relu reads the Add's output: MatMul -> Relu -> Add -> (back to) Relu.
    write('cycle.onnx', editProto(good(), (p) => {
      const relu = p.graph.node.find((n: any) => n.op_type === 'Relu');
      const add = p.graph.node.find((n: any) => n.op_type === 'Add');
      relu.input[0] = add.output[0];
    }));
    await expectFailure(['optimize', 'cycle.onnx'], 'invalid', /cycle\.onnx: graph 'main' has a cycle through node '(Relu|Add)' \(\w+\) and node '(Relu|Add)'/);
  });

  it('a node with an undefined input', async () => {
    write('undef.onnx', editProto(good(), (p) => {
      p.graph.node.find((n: any) => n.op_type === 'Relu').input[0] = 'nowhere';
    }));
    await expectFailure(['optimize', 'undef.onnx'], 'invalid', /undef\.onnx: node 'Relu' \(Relu\) reads 'nowhere', which is not defined/);
  });

  it('an unknown op domain', async () => {
    write('domain.onnx', editProto(good(), (p) => {
      p.graph.node.find((n: any) => n.op_type === 'Relu').domain = 'com.example';
      p.opset_import.push({ domain: 'com.example', version: 1 });
    }));
    await expectFailure(['optimize', 'domain.onnx'], 'unsupported', /node 'Relu' \(com\.example::Relu\) uses unknown op domain 'com\.example'/);
  });

  it('-o naming the input file leaves it untouched when the run fails', async () => {
    write('self.onnx', editProto(good(), (p) => {
      p.graph.node.find((n: any) => n.op_type === 'Add').input[1] = 'missing_bias';
    }));
    await expectFailure(['optimize', 'self.onnx', '-o', 'self.onnx'], 'invalid', /reads 'missing_bias'/);
    write('self2.onnx', editProto(good(), (p) => {
      p.graph.node.find((n: any) => n.op_type === 'Add').domain = 'com.example';
      p.opset_import.push({ domain: 'com.example', version: 1 });
    }));
    await expectFailure(['optimize', 'self2.onnx', '-o', path.join(dir, 'self2.onnx')], 'unsupported', /unknown op domain/);
  });

  it('an unwritable output location', async () => {
    write('ok.onnx', good());
    await expectFailure(['optimize', 'ok.onnx', '-o', 'no/such/dir/out.onnx'], 'io', /directory .*no\/such\/dir does not exist/);
    await expectFailure(['optimize', 'ok.onnx', '-o', 'ok.onnx/out.onnx'], 'io', /ok\.onnx is not a directory/);
    await expectFailure(['optimize', 'ok.onnx', '-o', 'adir'], 'io', /adir: is a directory/);
    await expectFailure(['optimize', 'ok.onnx', '--json', 'no/dir/r.json'], 'io', /JSON report .*does not exist/);
    const ro = path.join(dir, 'readonly');
    fs.mkdirSync(ro);
    fs.chmodSync(ro, 0o555);
    let writable = true;
    try {
      fs.writeFileSync(path.join(ro, 'probe'), '');
      fs.rmSync(path.join(ro, 'probe'));
    } catch {
      writable = false;
    }
    // Root can write anywhere; the check is then only meaningful for non-root users.
    if (!writable) await expectFailure(['optimize', 'ok.onnx', '-o', 'readonly/out.onnx'], 'io', /readonly is not writable/);
    fs.chmodSync(ro, 0o755);
    fs.rmdirSync(ro);
  });

  it('usage errors', async () => {
    await expectFailure(['optimize', '--bogus'], 'usage', /unknown option '--bogus'/);
    await expectFailure(['inspect'], 'usage', /missing required argument 'input'/);
    await expectFailure(['optimise', 'x.onnx'], 'usage', /unknown command 'optimise'/);
    await expectFailure(['optimize', 'a.onnx', '--demo'], 'usage', /--demo takes no input file/);
    await expectFailure(['optimize', 'a.onnx', 'b.onnx'], 'usage', /too many arguments/);
  });

  it('--verbose adds the stack trace', async () => {
    const r = await cli(dir, 'optimize', 'empty.onnx', '--verbose');
    expect(r.code).toBe(EXIT_CODES.parse);
    expect(r.stderr.split('\n')[0]).toMatch(/^ortfuse: error: .*empty\.onnx: file is empty, not an ONNX model$/);
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  it('an unexpected internal error exits 1 with one line (stack only with --verbose)', async () => {
    COMMANDS.push({ name: 'boom', configure: () => {}, parse: () => ({}), run: () => (null as any).field });
    try {
      const q = await cli(dir, 'boom');
      expect(q.code).toBe(1);
      expect(q.stderr).toMatch(/^ortfuse: error: internal error: Cannot read properties of null \(reading 'field'\) \(run with --verbose for the stack trace\)\n$/);
      const v = await cli(dir, 'boom', '--verbose');
      expect(v.stderr).toMatch(/^ortfuse: error: internal error: [^\n]+\nTypeError: [^\n]+\n\s+at /);
    } finally {
      COMMANDS.pop();
    }
  });
});
