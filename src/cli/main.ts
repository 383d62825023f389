#!/usr/bin/env node
/** The `ortfuse` executable. */
import { runCli } from './program.js';
import { processIO } from './command.js';

process.exitCode = await runCli(process.argv.slice(2), processIO());
