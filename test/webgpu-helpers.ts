/**
 * Shared setup of the WebGPU kernel tests: a real dawn.node device (SwiftShader on CPU-only
 * machines), seeded random data and the relative L2 error against float64 references.
 *
 * Skipping: only when no adapter is found AND VK_ICD_FILENAMES is unset after we tried to point it
 * at chromium's SwiftShader (then there is no Vulkan driver to use at all); the reason is printed.
 * With VK_ICD_FILENAMES set, a missing adapter is a failure, not a skip.
 */
import { GpuContext } from '../src/webgpu/context.js';
import { requestNodeAdapter, requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
export { rng, randn } from '../src/random.js';
import { rng, randn } from '../src/random.js';

export interface GpuEnv {
  ctx?: GpuContext;
  skip?: string;
}

let env: Promise<GpuEnv> | undefined;

/** The test device, once per test process. */
export function gpuEnv(options: { subgroups?: boolean } = {}): Promise<GpuEnv> {
  env ??= (async () => {
    useSwiftShaderIfPresent();
    const adapter = await requestNodeAdapter();
    if (!adapter) {
      if (!process.env.VK_ICD_FILENAMES) {
        const skip = 'NO WEBGPU ADAPTER and VK_ICD_FILENAMES unset (install chromium for SwiftShader): WebGPU kernel tests SKIPPED';
        console.warn(`\n*** ${skip} ***\n`);
        return { skip };
      }
      throw new Error(`no WebGPU adapter although VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES}`);
    }
    const device = await requestNodeDevice({ subgroups: options.subgroups });
    return { ctx: new GpuContext(device) };
  })();
  return env;
}

export { relL2 } from './numerics.js';

/** Float64 copy of a float32 array. */
export const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
