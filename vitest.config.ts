import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{src,passes,custom-ops,models,test}/**/*.test.ts'],
    // onnxruntime-node and dawn.node are native addons: run test files in child processes.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
