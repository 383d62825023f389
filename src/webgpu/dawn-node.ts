/// <reference types="@webgpu/types" />
/**
 * A GPUDevice in plain Node through dawn.node (the `webgpu` npm package), with the shims that
 * onnxruntime-web needs there (docs/runtime.md, "ORT-web in Node"):
 *
 * - Vulkan loader: Dawn dlopens `libvulkan.so.1`. Where the system has none (CI machines that only
 *   installed Debian's chromium), we preload chromium's copy so Dawn's dlopen finds it by soname.
 * - SwiftShader: without a GPU, `VK_ICD_FILENAMES` must point at chromium's SwiftShader ICD; set it
 *   (before Dawn starts) when it is unset and the file exists (`useSwiftShaderIfPresent`).
 * - `GPUQueue.prototype.writeBuffer` copies views on a SharedArrayBuffer (ORT-web's wasm heap),
 *   which dawn.node's N-API binding cannot read.
 * - ORT-web's 26 MB wasm: run node with `--liftoff-only` (or keep the event loop alive) or the
 *   first GPU wait stalls ~35 s while V8 tiers up; `useLiftoffOnly()` sets the flag at run time.
 *
 * Kernels never call this: they take a GPUDevice (ours here, or ORT-web's `ort.env.webgpu.device`).
 */
import fs from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import { fail } from '../errors.js';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CHROMIUM_VULKAN_LOADER = '/usr/lib/chromium/libvulkan.so.1';
const RTLD_NODELETE = 0x1000; // glibc; Node's os.constants.dlopen does not list it

/** Point Vulkan at chromium's SwiftShader when VK_ICD_FILENAMES is unset and the ICD exists. */
export function useSwiftShaderIfPresent(): boolean {
  if (process.env.VK_ICD_FILENAMES || !fs.existsSync(SWIFTSHADER_ICD)) return false;
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  process.env.XDG_RUNTIME_DIR ??= os.tmpdir();
  return true;
}

let loaderState: string | undefined;

/**
 * Make `libvulkan.so.1` loadable for Dawn: the system's, else chromium's (loaded RTLD_GLOBAL |
 * RTLD_NODELETE through process.dlopen, which then complains that it is no Node addon; the library
 * stays loaded, so Dawn's later dlopen by soname returns it). Returns which loader is used.
 */
export function preloadVulkanLoader(): string {
  if (loaderState !== undefined) return loaderState;
  if (process.platform !== 'linux') return (loaderState = 'system');
  const c = os.constants.dlopen as Record<string, number>;
  const flags = (c.RTLD_NOW ?? 2) | (c.RTLD_GLOBAL ?? 256) | RTLD_NODELETE;
  for (const path of ['libvulkan.so.1', CHROMIUM_VULKAN_LOADER]) {
    try {
      process.dlopen({ exports: {} }, path, flags);
    } catch (e) {
      // "did not self-register" = the library loaded fine, it is just not an addon.
      if (/self-register|undefined symbol: napi|Module did not/i.test(String((e as Error).message))) return (loaderState = path);
      continue;
    }
    return (loaderState = path);
  }
  return (loaderState = 'none');
}

/** Copy SharedArrayBuffer-backed views before dawn.node's writeBuffer reads them (idempotent). */
export function installWriteBufferShim(queueProto: GPUQueue): void {
  const proto = queueProto as GPUQueue & { __ortfuseShim?: boolean };
  if (proto.__ortfuseShim) return;
  const original = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset = 0, size?: number) {
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const bpe = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const n = size ?? data.byteLength / bpe - dataOffset;
      // TypedArray.prototype.slice allocates a fresh, non-shared ArrayBuffer (SAB.slice would not).
      const copy = new Uint8Array(data.buffer, data.byteOffset + dataOffset * bpe, n * bpe).slice();
      return original.call(this, buffer, offset, copy);
    }
    return original.call(this, buffer, offset, data as BufferSource, dataOffset, size);
  } as GPUQueue['writeBuffer'];
  proto.__ortfuseShim = true;
}

/** V8 flag that keeps ORT-web's wasm in Liftoff (see the header); call before importing ORT-web. */
export function useLiftoffOnly(): void {
  v8.setFlagsFromString('--liftoff-only');
}

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<GPU> | undefined;

/**
 * dawn.node create() flags with each list-valued key given once: dawn.node keeps only the last
 * value of a key, so 'enable-dawn-features=disable_robustness' after DAWN_F16_MATRIX_TOGGLES would
 * drop allow_unsafe_apis (and with it the tensor cores). The toggles of every
 * enable-/disable-dawn-features flag are joined, in order, without repeats; other flags as given.
 */
export function mergeDawnFlags(flags: readonly string[]): string[] {
  const lists = new Map<string, string[]>();
  const out: string[] = [];
  for (const f of flags) {
    const eq = f.indexOf('=');
    const key = eq < 0 ? f : f.slice(0, eq);
    if (key !== 'enable-dawn-features' && key !== 'disable-dawn-features') {
      out.push(f);
      continue;
    }
    if (!lists.has(key)) {
      lists.set(key, []);
      out.push(key);
    }
    const list = lists.get(key)!;
    for (const t of f.slice(eq + 1).split(',')) if (t && !list.includes(t)) list.push(t);
  }
  return out.map((f) => (lists.has(f) ? `${f}=${lists.get(f)!.join(',')}` : f));
}

/**
 * Load dawn.node once and return its GPU: preload the Vulkan loader, install the WebGPU globals
 * (GPUBufferUsage, GPUMapMode, ...) and the writeBuffer shim, and set `navigator.gpu` when absent
 * (ORT-web looks there). `options` (dawn.node create() flags) only count on the first call.
 */
export function loadDawn(options: string[] = []): Promise<GPU> {
  dawn ??= (async () => {
    preloadVulkanLoader();
    const mod = (await import('webgpu')) as unknown as DawnModule;
    const g = globalThis as Record<string, unknown>;
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in g)) g[k] = v;
    installWriteBufferShim((mod.globals.GPUQueue as { prototype: GPUQueue }).prototype);
    // ORTFUSE_DAWN_FLAGS: extra create() flags, ';'-separated (e.g. 'enable-dawn-features=skip_validation'), for measurements.
    const extra = process.env.ORTFUSE_DAWN_FLAGS?.split(';').filter((f) => f.length > 0) ?? [];
    const gpu = mod.create(mergeDawnFlags([...options, ...extra]));
    const nav = g.navigator as { gpu?: GPU } | undefined;
    if (!nav) g.navigator = { gpu };
    else if (!nav.gpu) {
      try {
        Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
      } catch { /* a frozen navigator: ORT-web then needs its own shim */ }
    }
    return gpu;
  })();
  return dawn;
}

/**
 * dawn.node create() flag under which NVIDIA's Vulkan driver offers 'shader-f16' and
 * 'chromium-experimental-subgroup-matrix' (Dawn blocks both there otherwise; ../shared/ANCHORS.md).
 */
export const DAWN_F16_MATRIX_TOGGLES = 'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,use_vulkan_memory_model';

export interface NodeDeviceOptions {
  /** Request the 'subgroups' feature when the adapter offers it (default true). */
  subgroups?: boolean;
  /** Further features to request where the adapter offers them (e.g. 'shader-f16', 'timestamp-query'). */
  features?: string[];
  /** dawn.node create() options, e.g. ['backend=vulkan'] (first load only). */
  dawnOptions?: string[];
}

/** Request the adapter (undefined when none is found; useful for tests that must say why they skip). */
export async function requestNodeAdapter(options: NodeDeviceOptions = {}): Promise<GPUAdapter | undefined> {
  const gpu = await loadDawn(options.dawnOptions);
  return (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ?? undefined;
}

/**
 * A GPUDevice in Node with the adapter's maximum buffer and workgroup-storage limits and, where
 * offered, the 'subgroups' feature. Fails with a one-line reason when no adapter exists.
 */
export async function requestNodeDevice(options: NodeDeviceOptions = {}): Promise<GPUDevice> {
  const adapter = await requestNodeAdapter(options);
  if (!adapter)
    fail('runtime', `no WebGPU adapter in Node (dawn.node; Vulkan loader: ${preloadVulkanLoader()}, VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? 'unset'})`);
  const features: GPUFeatureName[] = [];
  if (options.subgroups !== false && adapter.features.has('subgroups')) features.push('subgroups');
  for (const f of options.features ?? []) if (adapter.features.has(f)) features.push(f as GPUFeatureName);
  const l = adapter.limits;
  return adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
}
