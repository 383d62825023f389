#!/usr/bin/env node
/** The `ortfuse` executable. */
import { processIO } from './command.js';
import { EXIT_CODES } from '../errors.js';
import { missingPackage } from '../runtime/peers.js';

// onnxruntime-node is an optional peer dependency (package.json), loaded only when the cpu backend
// trains; this catch is for an install whose own modules are broken.
let program: typeof import('./program.js');
try {
  program = await import('./program.js');
} catch (e) {
  const pkg = missingPackage(e, ['onnxruntime-node']);
  if (!pkg) throw e;
  process.stderr.write(`ortfuse: error: the CLI needs ${pkg} (a peer dependency), which is not installed: npm install ${pkg}\n`);
  process.exit(EXIT_CODES.usage);
}
process.exitCode = await program.runCli(process.argv.slice(2), processIO());
