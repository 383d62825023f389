/** Output paths checked before any work: the directory exists and is writable, the path is no directory. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.js';

/** Fail before any work if `file` cannot be written (missing or read-only directory, a directory in the way). */
export function assertWritable(file: string, what: string): void {
  const dir = path.dirname(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return fail('io', `${what} ${file}: directory ${dir} does not exist`);
  }
  if (!st.isDirectory()) fail('io', `${what} ${file}: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    fail('io', `${what} ${file}: directory ${dir} is not writable`);
  }
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) fail('io', `${what} ${file}: is a directory`);
}
