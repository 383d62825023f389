/**
 * dawn.node create() flags (src/webgpu/dawn-node.ts mergeDawnFlags): dawn.node keeps the last value
 * of a key, so a measurement toggle given after the tensor-core toggles must not replace them.
 */
import { describe, expect, it } from 'vitest';
import { DAWN_F16_MATRIX_TOGGLES, mergeDawnFlags } from '../src/webgpu/dawn-node.js';

describe('mergeDawnFlags', () => {
  it('joins the toggles of repeated enable-dawn-features flags, in order, without repeats', () => {
    expect(mergeDawnFlags([DAWN_F16_MATRIX_TOGGLES, 'enable-dawn-features=disable_robustness,allow_unsafe_apis'])).toEqual([
      'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model,disable_robustness',
    ]);
  });

  it('keeps other flags as given and enable / disable lists apart', () => {
    expect(mergeDawnFlags(['backend=vulkan', 'enable-dawn-features=a', 'disable-dawn-features=b', 'enable-dawn-features=c', 'adapter=x'])).toEqual([
      'backend=vulkan', 'enable-dawn-features=a,c', 'disable-dawn-features=b', 'adapter=x',
    ]);
    expect(mergeDawnFlags([])).toEqual([]);
  });
});
