/// <reference types="@webgpu/types" />
/**
 * A compute program, as onnxruntime's JS WebGPU ops describe one (docs/runtime.md, "Kernels policy"): name,
 * cache key (dtypes and attributes only), dispatch size, uniforms and WGSL. Each uniform is
 * declared once as {name, type, value}; both the WGSL struct `u` and the uniform bytes are generated
 * from that list. Storage bindings are declared the same way. Shapes live in uniforms, so one
 * pipeline serves every shape; pipelines are cached per device by name + key + signature.
 */

export type UniformType = 'u32' | 'i32' | 'f32';

export interface Uniform {
  name: string;
  type: UniformType;
  value: number;
}

export type StorageType = 'f32' | 'u32' | 'i32' | 'f16';

export interface BindingDecl {
  name: string;
  /** 'read' buffers are bound read-only; a buffer written by the program must be 'read_write'. */
  access: 'read' | 'read_write';
  type: StorageType;
}

export interface Program {
  name: string;
  /** Only dtypes and attributes (never shapes): selects the cached pipeline together with `name`. */
  cacheKey: string;
  workgroupSize: readonly [number, number?, number?];
  /** Workgroup counts [x, y, z]; see dispatch1d for more than 65535 workgroups. */
  dispatch: readonly [number, number, number];
  uniforms: readonly Uniform[];
  bindings: readonly BindingDecl[];
  /** Use subgroup builtins: the entry point then gets `sg_size` and `sg_lane`. */
  subgroups?: boolean;
  /** Further WGSL extensions to enable (e.g. 'f16', 'chromium_experimental_subgroup_matrix'). */
  extensions?: readonly string[];
  /** WGSL diagnostics to turn off, e.g. 'chromium.subgroup_matrix_uniformity'. */
  diagnosticsOff?: readonly string[];
  /**
   * WGSL after the generated declarations: helper functions and `var<workgroup>`s in `decls`,
   * and the entry body, which sees `gid`, `lid`, `lidx`, `wid`, `nwg` (and `sg_size`, `sg_lane`),
   * the uniforms as `u.<name>` and each binding by name. Called only on a cache miss.
   */
  source(): { decls?: string; main: string };
}

const MAX_DIM = 65535;

/**
 * Workgroup counts for `groups` workgroups along one axis, split over x and y when above 65535.
 * The program recovers the flat workgroup index with `flatWorkgroup(wid, nwg)` (see PRELUDE).
 */
export function dispatch1d(groups: number): [number, number, number] {
  if (groups <= MAX_DIM) return [Math.max(1, groups), 1, 1];
  const y = Math.ceil(groups / MAX_DIM);
  return [Math.ceil(groups / y), y, 1];
}

const PRELUDE = `
fn flatWorkgroup(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }
`;

/** The full WGSL of a program: directives, uniform struct, bindings, prelude, user code, entry. */
export function generateWgsl(p: Program): string {
  const { decls = '', main } = p.source();
  const lines: string[] = [];
  if (p.subgroups) lines.push('enable subgroups;');
  for (const e of p.extensions ?? []) lines.push(`enable ${e};`);
  for (const d of p.diagnosticsOff ?? []) lines.push(`diagnostic(off, ${d});`);
  const u = p.uniforms.length ? p.uniforms : [{ name: 'unused', type: 'u32' as const, value: 0 }];
  lines.push(`struct Uniforms {\n${u.map((x) => `  ${x.name}: ${x.type},`).join('\n')}\n};`);
  lines.push('@group(0) @binding(0) var<uniform> u: Uniforms;');
  p.bindings.forEach((b, i) => {
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`);
  });
  lines.push(PRELUDE, decls);
  const [x, y = 1, z = 1] = p.workgroupSize;
  const sg = p.subgroups ? ',\n        @builtin(subgroup_size) sg_size: u32, @builtin(subgroup_invocation_id) sg_lane: u32' : '';
  lines.push(`@compute @workgroup_size(${x}, ${y}, ${z})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) lidx: u32, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u${sg}) {
${main}
}`);
  return lines.join('\n');
}

/** Uniform bytes laid out as the generated struct (all members are 4-byte scalars). */
export function uniformBytes(uniforms: readonly Uniform[]): ArrayBuffer {
  const n = Math.max(4, Math.ceil(Math.max(1, uniforms.length) / 4) * 4);
  const buf = new ArrayBuffer(n * 4);
  const dv = new DataView(buf);
  uniforms.forEach((x, i) => {
    if (x.type === 'f32') dv.setFloat32(i * 4, x.value, true);
    else if (x.type === 'i32') {
      if (!Number.isInteger(x.value) || x.value < -(2 ** 31) || x.value >= 2 ** 31) throw new RangeError(`uniform ${x.name}=${x.value} is not an i32`);
      dv.setInt32(i * 4, x.value, true);
    } else {
      if (!Number.isInteger(x.value) || x.value < 0 || x.value >= 2 ** 32) throw new RangeError(`uniform ${x.name}=${x.value} is not a u32`);
      dv.setUint32(i * 4, x.value, true);
    }
  });
  return buf;
}

/** Pipeline identity: name, key, and the (name, type) signature of uniforms and bindings. */
export function pipelineKey(p: Program): string {
  const sig = p.uniforms.map((x) => `${x.name}:${x.type}`).join(',') + '|' + p.bindings.map((b) => `${b.name}:${b.access}:${b.type}`).join(',');
  return `${p.name}[${p.cacheKey}]wg=${p.workgroupSize.join('x')}${p.subgroups ? ',sg' : ''}${(p.extensions ?? []).map((e) => `,${e}`).join('')}|${sig}`;
}

export interface CompiledProgram {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const caches = new WeakMap<GPUDevice, Map<string, CompiledProgram>>();

/**
 * The cached pipeline of a program on `device` (compiled on first use), with an explicit bind
 * group layout: binding 0 = uniforms, then the storage bindings in declaration order (an 'auto'
 * layout would drop bindings the shader happens not to use).
 */
export function getPipeline(device: GPUDevice, p: Program): CompiledProgram {
  let cache = caches.get(device);
  if (!cache) caches.set(device, (cache = new Map()));
  const key = pipelineKey(p);
  let hit = cache.get(key);
  if (!hit) {
    const module = device.createShaderModule({ label: p.name, code: generateWgsl(p) });
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
    p.bindings.forEach((b, i) =>
      entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } }));
    const layout = device.createBindGroupLayout({ label: p.name, entries });
    const pipeline = device.createComputePipeline({
      label: `${p.name}[${p.cacheKey}]`,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    cache.set(key, (hit = { pipeline, layout }));
  }
  return hit;
}

/** Number of pipelines compiled so far on `device` (tests check that shapes reuse them). */
export function pipelineCount(device: GPUDevice): number {
  return caches.get(device)?.size ?? 0;
}
