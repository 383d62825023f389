/// <reference types="@webgpu/types" />
/**
 * GPU memory in use, counted at the WebGPU API: every `GPUDevice.createBuffer` (ours and ORT's, whose
 * pool holds buffers it is not using right now) adds its size until `GPUBuffer.destroy`. Installed
 * by wrapping the two prototype methods once per realm (dawn.node's classes in Node, the browser's
 * in a page), before ORT creates its device. Buffers dropped without destroy() stay counted.
 */

export interface MemoryMeter {
  /** Bytes in live buffers now. */
  readonly live: number;
  /** Most bytes live at once since install (or the last resetPeak). */
  readonly peak: number;
  /** Live buffers now. */
  readonly buffers: number;
  /** The largest single buffer created since install, bytes. */
  readonly largest: number;
  /**
   * Bytes handed back by destroy() since install. Dawn frees a destroyed buffer only once the GPU
   * has passed the commands submitted before the destroy, so the bytes released since the last
   * finished submission may still be held (src/runtime/webgpu/steps.ts bounds them).
   */
  readonly released: number;
  resetPeak(): void;
}

interface Classes {
  GPUDevice: { prototype: GPUDevice };
  GPUBuffer: { prototype: GPUBuffer };
}

class Meter implements MemoryMeter {
  live = 0;
  peak = 0;
  buffers = 0;
  largest = 0;
  released = 0;
  readonly sizes = new WeakMap<GPUBuffer, number>();
  resetPeak(): void {
    this.peak = this.live;
  }
}

const METER = Symbol.for('ortfuse.memoryMeter');

/**
 * The realm's meter, installing it on first use. `classes` defaults to the globals GPUDevice and
 * GPUBuffer (dawn.node's once src/webgpu/dawn-node.ts loadDawn has run; the browser's in a page).
 */
export function memoryMeter(classes?: Classes): MemoryMeter {
  const c = classes ?? (globalThis as unknown as Classes);
  const dev = c.GPUDevice.prototype as GPUDevice & { [METER]?: Meter };
  const have = dev[METER];
  if (have) return have;
  const m = new Meter();
  const create = dev.createBuffer;
  dev.createBuffer = function (this: GPUDevice, d: GPUBufferDescriptor) {
    const b = create.call(this, d);
    m.sizes.set(b, d.size);
    m.live += d.size;
    m.buffers++;
    m.peak = Math.max(m.peak, m.live);
    m.largest = Math.max(m.largest, d.size);
    return b;
  };
  const buf = c.GPUBuffer.prototype;
  const destroy = buf.destroy;
  buf.destroy = function (this: GPUBuffer) {
    const size = m.sizes.get(this);
    if (size !== undefined) {
      m.sizes.delete(this);
      m.live -= size;
      m.released += size;
      m.buffers--;
    }
    return destroy.call(this);
  };
  Object.defineProperty(dev, METER, { value: m });
  return m;
}
