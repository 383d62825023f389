/**
 * External data as bytes (the page's picked files): loadBytes(model, { externalData }) gives the
 * same tensors as loadFile reading the data file beside the model; a missing or short data file
 * is one error naming the tensor and the file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBytes, loadFile, saveFile } from '../src/onnx/io.js';
import { OrtfuseError } from '../src/errors.js';

const FIXTURE = path.join(path.dirname(new URL(import.meta.url).pathname), '../models/fixtures/qwen2-tiny.onnx');

describe('external data given as bytes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ortfuse-extbytes-'));
  const file = path.join(dir, 'm.onnx');
  saveFile(loadFile(FIXTURE), file, { externalData: true, location: 'weights.bin' });
  const bytes = fs.readFileSync(file);
  const data = new Uint8Array(fs.readFileSync(path.join(dir, 'weights.bin')));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads every external tensor from the given bytes, as loadFile does from the file', () => {
    const fromFile = loadFile(file);
    const external = fromFile.graph.initializers.filter((v) => v.initializer!.external);
    expect(external.length).toBeGreaterThan(5);
    const fromBytes = loadBytes(bytes, { source: 'm.onnx', externalData: new Map([['weights.bin', data]]) });
    for (const v of fromFile.graph.initializers) {
      const w = fromBytes.graph.findValue(v.name)!;
      expect(w.initializer!.external, v.name).toBeUndefined();
      expect(w.initializer!.dims).toEqual(v.initializer!.dims);
      expect(Buffer.from(w.initializer!.bytes()).equals(Buffer.from(v.initializer!.bytes())), v.name).toBe(true);
    }
  });

  it('names the tensor and the file when the data is missing or too short', () => {
    const err = (files: Map<string, Uint8Array>) => {
      try {
        loadBytes(bytes, { source: 'm.onnx', externalData: files });
      } catch (e) {
        expect(e).toBeInstanceOf(OrtfuseError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err(new Map())).toMatch(/^m\.onnx: tensor '.+' needs external data file 'weights\.bin', which is missing \(no data files were given\)$/);
    expect(err(new Map([['other.bin', data]]))).toMatch(/which is missing \(given: other\.bin\)$/);
    expect(err(new Map([['weights.bin', data.subarray(0, data.length - 100)]]))).toMatch(/^m\.onnx: tensor '.+' reads bytes \d+\.\.\d+ of 'weights\.bin', which has only \d+$/);
  });
});
