/** PEFT adapter directories on disk (Node): write ./adapter.ts's files, read them back for `--lora-init DIR`. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter.js';
import { writeFileAtomic } from './safetensors.js';

/** Write the files into `dir` (created if missing; each file atomically: temporary file + rename). */
export function saveAdapterDir(dir: string, files: ReadonlyMap<string, Uint8Array>): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail('io', `cannot write the adapter to ${dir}: ${(e as Error).message}`, e);
  }
  for (const [name, bytes] of files) writeFileAtomic(path.join(dir, name), bytes);
}

/** The two files of the PEFT adapter in `dir`. */
export function loadAdapterDir(dir: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const name of [ADAPTER_WEIGHTS, ADAPTER_CONFIG]) {
    const file = path.join(dir, name);
    try {
      out.set(name, fs.readFileSync(file));
    } catch (e) {
      fail('io', `--lora-init ${dir}: cannot read ${name} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); a PEFT adapter directory holds ${ADAPTER_WEIGHTS} and ${ADAPTER_CONFIG}`, e);
    }
  }
  return out;
}
