/**
 * Child of webgpu-backend-native.test.ts: creates one onnxruntime-web WebGPU session for the model
 * file argv[2] with ORT's verbose log on (it goes to this process's stderr, which the parent reads
 * for node placement), then exits.
 */
import * as fs from 'node:fs';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';

const { ort } = await nodeOrtWeb();
ort.env.logLevel = 'verbose';
const s = await ort.InferenceSession.create(new Uint8Array(fs.readFileSync(process.argv[2])), {
  executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer', logSeverityLevel: 0, logVerbosityLevel: 0,
} as never);
await s.release();
process.exit(0);
