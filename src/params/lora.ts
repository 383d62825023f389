/**
 * LoRA as a graph rewrite (Hu et al. 2021, https://arxiv.org/abs/2106.09685; PEFT's layout): on an
 * adopted export (./adopt.ts: each parameter one initializer under its torch name), every target
 * projection y = x·Wᵀ (+b) becomes
 *
 *     y = x·Wᵀ (+b) + s·(x·Aᵀ)·Bᵀ,   s = alpha / r,   A [r, in], B [out, r]
 *
 * with A kaiming-uniform (a = √5, as PEFT: U(−1/√in, 1/√in)), seeded, and B zero — or both from an
 * existing PEFT adapter (`init`). The adapter matmuls are stock ONNX (MatMul, Transpose, Mul, Add), so
 * every backend runs them; the base weights stay initializers: no gradient, no AdamW moments. Only
 * `<module>.lora_A.weight` / `<module>.lora_B.weight` train.
 *
 * A projection is a 2-D `<module>.weight` all of whose reads are a linear: MatMul(x, Transpose(W)),
 * Gemm(x, W, transB=1), or (graphs without the exporter's record) MatMul(x, W) with W stored [in, out].
 */
import picomatch from 'picomatch';
import { fail } from '../errors.js';
import type { Model, Node, Value } from '../ir/graph.js';
import { GraphBuilder } from '../ir/builder.js';
import { Tensor } from '../ir/tensor.js';
import { DataType } from '../onnx/schema.js';
import { rng } from '../random.js';
import type { ParameterDiscovery } from './discover.js';
import type { ResolvedLora } from './lora-config.js';
import { readAdapter } from './adapter.js';

export const LORA_TAG = 'lora';

/** One adapted projection. */
export interface LoraModule {
  /** Torch module name (`model.layers.0.self_attn.q_proj`). */
  module: string;
  /** Its weight parameter (`<module>.weight`). */
  weight: string;
  /** Parameter names of A [r, in] and B [out, r]. */
  a: string;
  b: string;
  in: number;
  out: number;
  /** How the model stores W: torch's [out, in] or transposed [in, out]. */
  layout: 'torch' | 'transposed';
}

/** What addLora did: the adapters and the settings they were made with. */
export interface LoraAdapters {
  r: number;
  alpha: number;
  dropout: number;
  /** s = alpha / r. */
  scale: number;
  modules: LoraModule[];
  /** PEFT's target_modules for adapter_config.json (module-name suffixes, or a full-match regex). */
  targetModules: string[] | string;
  baseModel: string | null;
}

interface Site {
  module: string;
  w: Value;
  in: number;
  out: number;
  layout: LoraModule['layout'];
  /** The linear nodes reading W, with the input x and the output y of each. */
  reads: { x: Value; y: Value; node: Node }[];
}

/** The linear reads of initializer `w` (undefined when any read is something else). */
function linearReads(w: Value): { layout: LoraModule['layout']; reads: Site['reads'] } | undefined {
  const reads: Site['reads'] = [];
  let layout: LoraModule['layout'] | undefined;
  const set = (l: LoraModule['layout']) => (layout === undefined || layout === l ? (layout = l) : undefined);
  for (const u of w.uses()) {
    const n = u.node;
    if (n.opType === 'Transpose' && u.index === 0 && n.attrInts('perm', [1, 0]).join() === '1,0') {
      for (const t of n.outputs[0].uses()) {
        if (t.node.opType !== 'MatMul' || t.index !== 1 || !set('torch')) return undefined;
        reads.push({ x: t.node.input(0)!, y: t.node.outputs[0], node: t.node });
      }
    } else if (n.opType === 'Gemm' && u.index === 1 && n.attrInt('transB', 0) === 1 && n.attrInt('transA', 0) === 0 && n.attrFloat('alpha', 1) === 1 && set('torch')) {
      reads.push({ x: n.input(0)!, y: n.outputs[0], node: n });
    } else if (n.opType === 'MatMul' && u.index === 1 && set('transposed')) {
      reads.push({ x: n.input(0)!, y: n.outputs[0], node: n });
    } else return undefined;
  }
  return reads.length && layout ? { layout, reads } : undefined;
}

/** Every projection of the model: a 2-D `<module>.weight` read only by linears. */
function projections(m: Model, d: ParameterDiscovery): Site[] {
  const byName = new Map(m.graph.initializers.map((v) => [v.name, v]));
  const out: Site[] = [];
  for (const p of d.parameters) {
    const w = byName.get(p.name);
    if (!w || !p.name.endsWith('.weight') || p.shape.length !== 2 || p.aliases.length) continue;
    const r = linearReads(w);
    if (!r) continue;
    const [o, i] = r.layout === 'torch' ? w.initializer!.dims : [...w.initializer!.dims].reverse();
    out.push({ module: p.name.slice(0, -'.weight'.length), w, in: i, out: o, ...r });
  }
  return out;
}

/** PEFT's target_modules naming exactly `chosen` among `all`: their last name parts, else a full-match regex. */
function peftTargets(chosen: Site[], all: Site[]): string[] | string {
  const leaf = (s: Site) => s.module.slice(s.module.lastIndexOf('.') + 1);
  const leaves = [...new Set(chosen.map(leaf))].sort();
  if (all.filter((s) => leaves.includes(leaf(s))).length === chosen.length) return leaves;
  return `^(${chosen.map((s) => s.module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;
}

/** A: PEFT's kaiming_uniform_(a=√5) = U(−1/√in, 1/√in), seeded. */
function kaimingA(r: number, fanIn: number, next: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  const a = new Float32Array(r * fanIn);
  for (let i = 0; i < a.length; i++) a[i] = (2 * next() - 1) * bound;
  return a;
}

/**
 * Add adapters to the target projections of adopted model `m` (changed in place). Fails, before
 * changing anything, on a target that matches no projection or an `init` adapter that does not fit.
 */
export function addLora(m: Model, d: ParameterDiscovery, o: ResolvedLora, baseModel?: string): LoraAdapters {
  const all = projections(m, d);
  if (!all.length) fail('invalid', `lora: the model has no projection (a 2-D '<module>.weight' read by MatMul/Gemm) to adapt (parameters: ${d.parameters.slice(0, 4).map((p) => p.name).join(', ')} …)`);
  const init = o.init ? readAdapter(o.init) : undefined;
  let r = o.r, alpha = o.alpha;
  if (init) {
    if (o.given.r && o.r !== init.r) fail('usage', `lora r=${o.r}, but the init adapter has r=${init.r}`);
    if (o.given.alpha && o.alpha !== init.alpha) fail('usage', `lora alpha=${o.alpha}, but the init adapter has lora_alpha=${init.alpha}`);
    ({ r, alpha } = init);
  }
  let chosen: Site[];
  if (init && !o.given.targets) {
    const byModule = new Map(all.map((s) => [s.module, s]));
    chosen = [...init.modules.keys()].map((mod) => byModule.get(mod) ?? fail('usage', `lora init: the adapter has weights for '${mod}', which is not a projection of this model (projections look like '${all[0].module}')`));
  } else {
    const tests = o.targets.map((g) => {
      const t = picomatch(g, { dot: true });
      if (!all.some((s) => t(s.module))) fail('usage', `lora target '${g}' matches no projection (modules look like '${all[0].module}'; short names: q k v o gate up down)`);
      return t;
    });
    chosen = all.filter((s) => tests.some((t) => t(s.module)));
    if (init) for (const s of chosen) if (!init.modules.has(s.module)) fail('usage', `lora init: the adapter has no weights for target '${s.module}'`);
  }
  const next = rng(o.seed);
  const modules: LoraModule[] = [];
  for (const s of chosen) {
    const given = init?.modules.get(s.module);
    if (given && (given.a.shape.join() !== `${r},${s.in}` || given.b.shape.join() !== `${s.out},${r}`))
      fail('usage', `lora init: '${s.module}' has A [${given.a.shape}] and B [${given.b.shape}]; this model needs A [${r}, ${s.in}] and B [${s.out}, ${r}]`);
    const aData = given?.a.data ?? kaimingA(r, s.in, next);
    const bData = given?.b.data ?? new Float32Array(s.out * r);
    modules.push({ module: s.module, weight: s.w.name, a: `${s.module}.lora_A.weight`, b: `${s.module}.lora_B.weight`, in: s.in, out: s.out, layout: s.layout });
    rewrite(m, s, Tensor.from(DataType.FLOAT, [r, s.in], aData), Tensor.from(DataType.FLOAT, [s.out, r], bData), alpha / r);
  }
  return { r, alpha, dropout: o.dropout, scale: alpha / r, modules, targetModules: peftTargets(chosen, all), baseModel: o.baseModel ?? baseModel ?? null };
}

/** y → y + s·(x·Aᵀ)·Bᵀ at every read of the site's W. */
function rewrite(m: Model, s: Site, a: Tensor, bT: Tensor, scale: number): void {
  const g = m.graph;
  const init = new GraphBuilder(g);
  const A = init.initializer(`${s.module}.lora_A.weight`, a);
  const B = init.initializer(`${s.module}.lora_B.weight`, bT);
  if (A.name !== `${s.module}.lora_A.weight` || B.name !== `${s.module}.lora_B.weight`) fail('invalid', `lora: the model already has a value named '${s.module}.lora_A.weight' or '.lora_B.weight'`);
  const sv = init.constant(scale, { dtype: DataType.FLOAT, dims: [], name: `${s.module}.lora_scale` });
  for (const { x, y } of s.reads) {
    const users = y.uses();
    const first = g.nodes.find((n) => users.some((u) => u.node === n));
    const b = new GraphBuilder(g, { before: first, tag: LORA_TAG });
    const xa = b.op.MatMul(x, b.op.Transpose(A, { perm: [1, 0] }));
    const sum = b.op.Add(y, b.op.Mul(b.op.MatMul(xa, b.op.Transpose(B, { perm: [1, 0] })), sv));
    if (y.type) sum.type = y.type;
    if (y.isGraphOutput()) fail('unsupported', `lora: the output of '${s.module}' is a graph output (${y.name}); adapting it would rename the output`);
    for (const u of users) u.node.setInput(u.index, sum);
  }
}

/**
 * The merged base weights W + s·B·A (in the model's layout of W), by weight name, from the base
 * values and the adapters' current A and B.
 */
export function mergeLora(ad: LoraAdapters, base: (name: string) => Float32Array, trained: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const r = ad.r;
  for (const mod of ad.modules) {
    const A = trained.get(mod.a) ?? fail('invalid', `lora merge: no value for '${mod.a}'`);
    const B = trained.get(mod.b) ?? fail('invalid', `lora merge: no value for '${mod.b}'`);
    const W = base(mod.weight).slice();
    for (let o = 0; o < mod.out; o++)
      for (let i = 0; i < mod.in; i++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * mod.in + i];
        W[mod.layout === 'torch' ? o * mod.in + i : i * mod.out + o] += ad.scale * acc;
      }
    out.set(mod.weight, W);
  }
  return out;
}

/**
 * The values to write under the base weights' names: with adapters and `merge`, W + s·B·A for each
 * adapted weight; otherwise `trained` as is (adapter values, if any, are not base weights).
 */
export function weightsToWrite(ad: LoraAdapters | undefined, merge: boolean, base: Model, trained: ReadonlyMap<string, Float32Array>): ReadonlyMap<string, Float32Array> {
  if (!ad) return trained;
  if (!merge) return new Map();
  const byName = new Map(base.graph.initializers.map((v) => [v.name, v]));
  const value = (n: string) => {
    const t = byName.get(n)?.initializer ?? fail('invalid', `lora merge: the model has no initializer '${n}'`);
    return t.toArray() as Float32Array;
  };
  return mergeLora(ad, value, trained);
}
