/// <reference types="@webgpu/types" />
/**
 * Whether a device can run gemm_f16 (./gemm-f16.ts: f16 operands on subgroup matrices, f32
 * accumulation) and with which settings: the features 'shader-f16' and
 * 'chromium-experimental-subgroup-matrix' on the device (on NVIDIA under dawn.node only when Dawn
 * was created with DAWN_F16_MATRIX_TOGGLES; in Chromium they come with the adapter), an f16→f32
 * matrix config of the adapter, and the WGSL spelling of the matrix builtins its compiler takes.
 * No Node imports (the browser page uses it too).
 */
import { pickF16Config, probeMatrixSyntax } from './gemm-f16.js';
import type { F16Options } from './gemm-f16-plan.js';

type Configs = { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];

/** gemm_f16's options for `device`, or `why` it cannot run there (one line). */
export async function f16MatrixFor(device: GPUDevice): Promise<{ options?: F16Options; why?: string }> {
  const missing = ['shader-f16', 'chromium-experimental-subgroup-matrix'].filter((f) => !device.features.has(f as GPUFeatureName));
  if (missing.length) return { why: `the WebGPU device lacks ${missing.join(' and ')}` };
  // ORT-web's device keeps its adapter's info; Dawn's may leave the matrix configs out of it, so
  // ask the adapter (the same GPU) when they are missing.
  let configs = ((device as unknown as { adapterInfo?: { subgroupMatrixConfigs?: Configs } }).adapterInfo?.subgroupMatrixConfigs) ?? [];
  if (!configs.length) {
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    const adapter = await gpu?.requestAdapter({ powerPreference: 'high-performance' });
    configs = (adapter?.info as unknown as { subgroupMatrixConfigs?: Configs } | undefined)?.subgroupMatrixConfigs ?? [];
  }
  const config = pickF16Config(configs);
  if (!config) return { why: `the adapter offers no f16→f32 subgroup-matrix config that tiles gemm_f16's blocks (configs: ${JSON.stringify(configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}x${c.N}x${c.K}`))})` };
  const probe = await probeMatrixSyntax(device, config);
  if (!probe.syntax) return { why: `the WGSL compiler takes neither spelling of the subgroup-matrix builtins: ${probe.messages.slice(0, 2).join('; ')}` };
  return { options: { config, syntax: probe.syntax } };
}
