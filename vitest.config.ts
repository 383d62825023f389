import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{src,passes,custom-ops,models,test}/**/*.test.ts'],
    // onnxruntime-node and dawn.node are native addons: run test files in child processes.
    pool: 'forks',
    // SwiGLU-and-all WebGPU training tests run 1-2 minutes on SwiftShader with 2 cores; a timeout
    // in the middle of one leaves its work running on the shared device and breaks the next test.
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
