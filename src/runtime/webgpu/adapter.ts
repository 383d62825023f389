/// <reference types="@webgpu/types" />
/**
 * What the webgpu backend runs on, for the train header and the memory check (made before ORT-web
 * creates its device, which takes the adapter's buffer limits): the adapter's name (vendor,
 * architecture, description of its GPUAdapterInfo),
 * whether it is a software adapter (SwiftShader, llvmpipe/lavapipe, WARP, or flagged as a fallback
 * adapter), and the largest buffer a kernel may bind.
 */

export interface AdapterSummary {
  /** e.g. 'nvidia hopper (NVIDIA H100 80GB HBM3)' or 'google swiftshader (SwiftShader Device (Subzero))'. */
  name: string;
  /** A CPU implementation of WebGPU: far slower than `--backend cpu`. */
  software: boolean;
  /** min(maxBufferSize, maxStorageBufferBindingSize) of the device, bytes. */
  maxBufferBytes: number;
}

import { fail } from '../../errors.js';
import { createModel, GraphBuilder } from '../../ir/builder.js';
import { DataType } from '../../onnx/schema.js';
import { saveBytes } from '../../onnx/io.js';
import type { OrtWeb } from './steps.js';

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b/i;

/** Summary of a WebGPU adapter (its info and limits). */
export function describeAdapter(adapter: GPUAdapter): AdapterSummary {
  const info = (adapter.info ?? {}) as Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean };
  const words = [info.vendor, info.architecture].filter((s) => s).join(' ');
  const detail = info.description || info.device || '';
  const name = [words, detail && `(${detail})`].filter((s) => s).join(' ') || 'unknown adapter';
  const fallback = info.isFallbackAdapter === true || (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const software = fallback || SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.description} ${info.device}`);
  const l = adapter.limits;
  return { name, software, maxBufferBytes: Math.min(l.maxBufferSize, l.maxStorageBufferBindingSize) };
}

/** Summary of a device (its adapter's info, which Dawn and ORT-web keep as `adapterInfo`, and its own limits). */
export function describeDevice(device: GPUDevice): AdapterSummary {
  const info = (device as unknown as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  return describeAdapter({ info, limits: device.limits } as unknown as GPUAdapter);
}

/**
 * What ORT-web's WebGPU EP runs on in this process: its device once it has one; before that, the
 * adapter dawn.node offers, which is then handed to ORT-web (`env.webgpu.adapter`) so that it
 * creates its device on the same adapter rather than requesting another. Fails in one line when
 * there is no adapter.
 */
export async function ortWebGpuSummary(ort: OrtWeb): Promise<AdapterSummary> {
  const device = ort.env.webgpu.device as unknown as GPUDevice | undefined;
  if (device && typeof (device as { limits?: unknown }).limits === 'object') return describeDevice(device);
  const { requestNodeAdapter, preloadVulkanLoader } = await import('../../webgpu/dawn-node.js');
  const adapter = await requestNodeAdapter();
  if (!adapter)
    return fail('runtime', `no WebGPU adapter in Node (dawn.node; Vulkan loader: ${preloadVulkanLoader()}, VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'}); use --backend cpu, or install a Vulkan driver (or Debian's chromium for SwiftShader)`);
  (ort.env.webgpu as { adapter?: unknown }).adapter = adapter;
  return describeAdapter(adapter);
}

/**
 * y = Identity(x), float32 [1]: the smallest model a WebGPU session can be made for — made by a
 * trainer whose stage plan has no WebGPU segment (all ORT work on the host), so that ORT-web still
 * creates the device its kernels and ours share.
 */
export function deviceProbeModel(): Uint8Array {
  const m = createModel({ opset: 17 });
  const b = new GraphBuilder(m.graph);
  b.output(b.op.Identity(b.input('x', DataType.FLOAT, [1])), 'y');
  return saveBytes(m);
}
