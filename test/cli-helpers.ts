/** Runs the CLI in-process (as `ortfuse <argv>` in `cwd`) and collects its output and exit code. */
import { runCli } from '../src/cli/program.js';

export async function cli(cwd: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), cwd });
  return { code, stdout, stderr };
}
