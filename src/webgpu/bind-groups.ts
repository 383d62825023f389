/// <reference types="@webgpu/types" />
/**
 * Bind groups reused across dispatches: one per (layout, uniform buffer, storage buffers in binding
 * order), found by object identity through nested WeakMaps. The uniforms are bound with a dynamic
 * offset (./uniform-ring.ts), so a group fits every dispatch of its pipeline on the same buffers,
 * whatever their uniforms.
 *
 * Lifetimes: an entry is reachable only while the layout and every one of its buffers' JS objects
 * are, so a buffer that is dropped takes its groups with it, and a replacement buffer (a new object)
 * never meets a group made for the old one. Destroying a buffer frees its memory at once whatever
 * groups name it (a group holds the buffer object, not its memory); such a group is only ever looked
 * up again by a caller passing the destroyed buffer itself, which WebGPU rejects as it did before.
 * The cache adds no GPU memory; a count bounds the groups it holds (past it, it starts over).
 */

interface Entry {
  group?: GPUBindGroup;
  next?: WeakMap<GPUBuffer, Entry>;
}

/** Groups held before the cache starts over (a step of the 0.5B trainer makes ~600 distinct ones). */
export const MAX_GROUPS = 8192;

export class BindGroupCache {
  private root = new WeakMap<GPUBindGroupLayout, Entry>();
  /** Groups created since the cache (last) started over. */
  created = 0;
  /** Lookups answered from the cache, since creation (tests, benches). */
  hits = 0;

  constructor(private readonly device: GPUDevice) {}

  /**
   * The group binding `uniforms` (binding 0, `uniformBytes` wide at a dynamic offset) and
   * `buffers` (bindings 1..n, whole buffers) for `layout`.
   */
  get(layout: GPUBindGroupLayout, label: string, uniforms: GPUBuffer, uniformBytes: number, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let e = this.root.get(layout);
    if (!e) this.root.set(layout, (e = {}));
    e = step(e, uniforms);
    for (let i = 0; i < buffers.length; i++) e = step(e, buffers[i]);
    if (e.group) {
      this.hits++;
      return e.group;
    }
    if (this.created >= MAX_GROUPS) return this.restart(layout, label, uniforms, uniformBytes, buffers);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniforms, offset: 0, size: uniformBytes } }];
    for (let i = 0; i < buffers.length; i++) entries.push({ binding: i + 1, resource: { buffer: buffers[i] } });
    this.created++;
    return (e.group = this.device.createBindGroup({ label, layout, entries }));
  }

  private restart(layout: GPUBindGroupLayout, label: string, uniforms: GPUBuffer, uniformBytes: number, buffers: readonly GPUBuffer[]): GPUBindGroup {
    this.root = new WeakMap();
    this.created = 0;
    return this.get(layout, label, uniforms, uniformBytes, buffers);
  }
}

function step(e: Entry, b: GPUBuffer): Entry {
  e.next ??= new WeakMap();
  let n = e.next.get(b);
  if (!n) e.next.set(b, (n = {}));
  return n;
}
