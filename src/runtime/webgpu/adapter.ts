/// <reference types="@webgpu/types" />
/**
 * What the webgpu backend runs on, for the train header and the memory check: the adapter's name
 * (vendor, architecture, description of the GPUAdapterInfo that ORT-web keeps on its device),
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

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b/i;

/** Summary of ORT-web's device (`ort.env.webgpu.device`; Dawn sets `adapterInfo` on it). */
export function describeDevice(device: GPUDevice): AdapterSummary {
  const info = ((device as unknown as { adapterInfo?: GPUAdapterInfo }).adapterInfo ?? {}) as Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean };
  const words = [info.vendor, info.architecture].filter((s) => s).join(' ');
  const detail = info.description || info.device || '';
  const name = [words, detail && `(${detail})`].filter((s) => s).join(' ') || 'unknown adapter';
  const software = info.isFallbackAdapter === true || SOFTWARE.test(`${info.vendor} ${info.architecture} ${info.description} ${info.device}`);
  const l = device.limits;
  return { name, software, maxBufferBytes: Math.min(l.maxBufferSize, l.maxStorageBufferBindingSize) };
}
