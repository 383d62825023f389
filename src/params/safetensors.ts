/**
 * safetensors files (atomic writes, reads naming the file); the format's bytes: ./safetensors-bytes.ts.
 */
import * as fs from 'node:fs';
import { fail } from '../errors.js';
import { decodeSafetensors, encodeSafetensors, type NamedTensor, type SafetensorsDtype } from './safetensors-bytes.js';

export { decodeSafetensors, encodeSafetensors, type NamedTensor, type SafetensorsDtype };

/** Write `tensors` to `file` atomically (temporary file + rename), in `dtype`. */
export function saveSafetensors(file: string, tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}, dtype: SafetensorsDtype = 'F32'): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata, dtype));
}

/** Write `bytes` to `file` atomically (temporary file + rename). */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    fail('io', `cannot write ${file}: ${(e as Error).message}`, e);
  }
}

export function loadSafetensors(file: string): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    return fail('io', `cannot read ${file}: ${(e as Error).message}`, e);
  }
  return decodeSafetensors(bytes, file);
}
