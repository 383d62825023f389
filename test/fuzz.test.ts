/**
 * Bounded fuzzing of `ortfuse optimize`: 500 seeded truncations, byte XORs and bit flips of a small
 * model (initializer, Constant node, If with two subgraphs reading outer values). Every attempt must
 * end, within a time bound, in a one-line OrtfuseError (io/parse/invalid/unsupported, nothing
 * written) or in a saved model that reloads and passes the checker. The attempts run in a child
 * process (test/fuzz-worker.ts) so that a hang is detected and killed.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../src/errors.js';

const ATTEMPTS = 500;
/** No attempt may take longer than this (they take a few ms). */
const ATTEMPT_MS = 5_000;

interface Attempt { seed: number; what: string; code: number; stderr: string; result: string; ms: number }

function runWorker(count: number, first: number): Promise<{ attempts: Attempt[]; hung?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/fuzz-worker.ts'), String(count), String(first)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const attempts: Attempt[] = [];
    let buf = '';
    let err = '';
    let hung: string | undefined;
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = `no result within ${ATTEMPT_MS} ms after seed ${attempts.at(-1)?.seed ?? first - 1}`;
        child.kill('SIGKILL');
      }, ATTEMPT_MS + 10_000 * Number(attempts.length === 0));
    };
    arm();
    child.stdout.on('data', (d) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        attempts.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        arm();
      }
    });
    child.stderr.on('data', (d) => void (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !hung) reject(new Error(`fuzz worker exited with ${code}: ${err}`));
      else resolve({ attempts, hung });
    });
  });
}

describe('fuzz', () => {
  it(`${ATTEMPTS} mutated models: a clear error or a valid model, never a crash or a hang`, async () => {
    const { attempts, hung } = await runWorker(ATTEMPTS, 0);
    expect(hung).toBeUndefined();
    expect(attempts).toHaveLength(ATTEMPTS);
    const allowed = [EXIT_CODES.io, EXIT_CODES.parse, EXIT_CODES.invalid, EXIT_CODES.unsupported];
    const bad = attempts.filter((a) =>
      a.ms > ATTEMPT_MS ||
      (a.code === 0 ? a.result !== 'valid' || a.stderr !== '' : !allowed.includes(a.code) || a.result !== 'error' || !/^ortfuse: error: [^\n]+\n$/.test(a.stderr)));
    const byCode: Record<string, number> = {};
    for (const a of attempts) byCode[a.code] = (byCode[a.code] ?? 0) + 1;
    console.log(`fuzz: ${ATTEMPTS} attempts, exit codes ${JSON.stringify(byCode)}, slowest ${Math.max(...attempts.map((a) => a.ms)).toFixed(1)} ms`);
    expect(bad).toEqual([]);
    // Both outcomes are exercised.
    expect(byCode[0]).toBeGreaterThan(20);
    expect(byCode[EXIT_CODES.parse]).toBeGreaterThan(100);
  });
});
