/**
 * Training checkpoints: step, metadata, and every parameter with its AdamW moments, in one file
 * (a JSON header, then raw little-endian float32 blocks). Written to a temporary file and renamed,
 * so an interrupted save never leaves a broken checkpoint behind. Resuming restores the exact
 * float32 state, so the next step is bit-identical to an uninterrupted run.
 */
import * as fs from 'node:fs';
import { fail } from '../errors.js';
import type { ParamState } from './optimizer.js';
import type { LossScalerState } from './loss-scale.js';

const MAGIC = 'ORTFUSE-CKPT-1';

export interface TrainState {
  step: number;
  params: Map<string, ParamState>;
  /** Anything needed to resume (seed, options, loss history). JSON-serializable. */
  meta: Record<string, unknown>;
  /**
   * AdamW's step count t (bias correction) where it differs from `step`: steps skipped by dynamic
   * loss scaling count as steps of the run but apply no update (./loss-scale.ts). Absent: `step`.
   */
  updates?: number;
  /** Mixed precision: the dynamic loss scaler's state, so a resumed run continues at the same scale. */
  scaler?: LossScalerState;
}

interface Header {
  magic: string;
  step: number;
  meta: Record<string, unknown>;
  updates?: number;
  scaler?: LossScalerState;
  params: { name: string; length: number; noDecay?: boolean }[];
}

function writeAll(fd: number, a: Float32Array): void {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let off = 0;
  while (off < b.length) off += fs.writeSync(fd, b, off, Math.min(b.length - off, 1 << 26));
}

function readAll(fd: number, n: number, file: string): Float32Array {
  const out = new Float32Array(n);
  const b = new Uint8Array(out.buffer);
  let off = 0;
  while (off < b.length) {
    const got = fs.readSync(fd, b, off, Math.min(b.length - off, 1 << 26), null);
    if (got === 0) fail('io', `checkpoint ${file} is truncated`);
    off += got;
  }
  return out;
}

export function saveCheckpoint(file: string, s: TrainState): void {
  const header: Header = {
    magic: MAGIC,
    step: s.step,
    meta: s.meta,
    ...(s.updates !== undefined && s.updates !== s.step ? { updates: s.updates } : {}),
    ...(s.scaler ? { scaler: s.scaler } : {}),
    params: [...s.params].map(([name, p]) => ({ name, length: p.value.length, noDecay: p.noDecay })),
  };
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const p of s.params.values()) {
      writeAll(fd, p.value);
      writeAll(fd, p.m);
      writeAll(fd, p.v);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    fail('io', `cannot write checkpoint ${file}: ${(e as Error).message}`, e);
  }
}

/** A checkpoint's step and metadata, without reading the parameters (for checks before any work). */
export function readCheckpointHeader(file: string): { step: number; meta: Record<string, unknown>; scaler?: LossScalerState; params: { name: string; length: number }[] } {
  return readCheckpoint(file, false) as Header;
}

export function loadCheckpoint(file: string): TrainState {
  return readCheckpoint(file, true) as TrainState;
}

function readCheckpoint(file: string, withParams: boolean): TrainState | Header {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail('io', `checkpoint ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'cannot read'}`, e);
  }
  try {
    const len = Buffer.alloc(4);
    let got: number;
    try {
      got = fs.readSync(fd, len, 0, 4, null);
    } catch (e) {
      return fail('io', `checkpoint ${file}: cannot read (${(e as NodeJS.ErrnoException).code})`, e);
    }
    if (got !== 4) fail('parse', `checkpoint ${file} is empty or truncated`);
    const n = len.readUInt32LE();
    const json = Buffer.alloc(Math.min(n, 1 << 28));
    if (n > 1 << 28 || fs.readSync(fd, json, 0, n, null) !== n) fail('parse', `checkpoint ${file} has a broken header`);
    let h: Header;
    try {
      h = JSON.parse(json.toString('utf8'));
    } catch {
      return fail('parse', `checkpoint ${file} has a broken header`);
    }
    if (h.magic !== MAGIC) fail('parse', `${file} is not an ortfuse checkpoint`);
    if (!withParams) return h;
    const params = new Map<string, ParamState>();
    for (const p of h.params) {
      const value = readAll(fd, p.length, file);
      const m = readAll(fd, p.length, file);
      const v = readAll(fd, p.length, file);
      params.set(p.name, { value, m, v, noDecay: p.noDecay });
    }
    return { step: h.step, meta: h.meta, params, ...(h.updates !== undefined ? { updates: h.updates } : {}), ...(h.scaler ? { scaler: h.scaler } : {}) };
  } finally {
    fs.closeSync(fd);
  }
}
