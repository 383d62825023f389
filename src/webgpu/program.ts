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

export type StorageType = 'f32' | 'u32' | 'i32' | 'f16' | 'vec4<f32>' | 'vec4<f16>';

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

/** What identifies a pipeline: a Program without its values, dispatch and source. */
type Signature = Pick<Program, 'name' | 'cacheKey' | 'workgroupSize' | 'bindings' | 'subgroups' | 'extensions' | 'diagnosticsOff'> & { uniforms: readonly { name: string; type: UniformType }[] };

/** A copy of `p`'s signature that holds nothing of its values (a source closure may hold buffers). */
function signature(p: Program): Signature {
  return {
    name: p.name, cacheKey: p.cacheKey, workgroupSize: [...p.workgroupSize], subgroups: p.subgroups,
    extensions: p.extensions && [...p.extensions], diagnosticsOff: p.diagnosticsOff && [...p.diagnosticsOff],
    uniforms: p.uniforms.map(({ name, type }) => ({ name, type })), bindings: p.bindings.map(({ name, access, type }) => ({ name, access, type })),
  };
}

/** Same pipeline: name, key, workgroup size, WGSL directives and the (name, type) signature of uniforms and bindings. */
function sameSignature(a: Signature, b: Program): boolean {
  if (a.name !== b.name || a.cacheKey !== b.cacheKey || !!a.subgroups !== !!b.subgroups) return false;
  for (let i = 0; i < 3; i++) if ((a.workgroupSize[i] ?? 1) !== (b.workgroupSize[i] ?? 1)) return false;
  const same = <T>(x: readonly T[] | undefined, y: readonly T[] | undefined, eq: (s: T, t: T) => boolean) => {
    const xs = x ?? [], ys = y ?? [];
    if (xs.length !== ys.length) return false;
    for (let i = 0; i < xs.length; i++) if (!eq(xs[i], ys[i])) return false;
    return true;
  };
  return same(a.uniforms, b.uniforms, (s, t) => s.name === t.name && s.type === t.type)
    && same(a.bindings, b.bindings, (s, t) => s.name === t.name && s.access === t.access && s.type === t.type)
    && same(a.extensions, b.extensions, (s, t) => s === t) && same(a.diagnosticsOff, b.diagnosticsOff, (s, t) => s === t);
}

export interface CompiledProgram {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** The signature of the program it was compiled from. */
  signature: Signature;
}

/** Per device: pipelines by `name[cacheKey]`, each list told apart by signature. */
const caches = new WeakMap<GPUDevice, Map<string, CompiledProgram[]>>();

/**
 * The cached pipeline of a program on `device` (compiled on first use), with an explicit bind
 * group layout: binding 0 = uniforms (bound at a dynamic offset, ./uniform-ring.ts), then the
 * storage bindings in declaration order (an 'auto' layout would drop bindings the shader happens
 * not to use). Lookup compares signatures field by field: no key string per dispatch.
 */
export function getPipeline(device: GPUDevice, p: Program): CompiledProgram {
  let cache = caches.get(device);
  if (!cache) caches.set(device, (cache = new Map()));
  const head = `${p.name}[${p.cacheKey}]`;
  let list = cache.get(head);
  if (!list) cache.set(head, (list = []));
  for (const c of list) if (sameSignature(c.signature, p)) return c;
  const module = device.createShaderModule({ label: p.name, code: generateWgsl(p) });
  const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } }];
  p.bindings.forEach((b, i) =>
    entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } }));
  const layout = device.createBindGroupLayout({ label: p.name, entries });
  const pipeline = device.createComputePipeline({
    label: head,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: 'main' },
  });
  const hit = { pipeline, layout, signature: signature(p) };
  list.push(hit);
  return hit;
}

/** Number of pipelines compiled so far on `device` (tests check that shapes reuse them). */
export function pipelineCount(device: GPUDevice): number {
  let n = 0;
  for (const list of caches.get(device)?.values() ?? []) n += list.length;
  return n;
}
