/**
 * Which float initializers of an exported model are the model's parameters, under which torch
 * names, in which layout — and which are buffers or constants.
 *
 * torch's dynamo exporter with its default optimizer folds `Transpose(W)` into new initializers
 * (`val_N` = Wᵀ, read by MatMul directly) and merges initializers with equal contents (a fresh
 * init's zero biases and unit norm weights become one shared tensor). Names then say little; the
 * exporter's record on every node does (./torch-record.ts): the FX node names each parameter it
 * reads (`%p_model_layers_0_self_attn_q_proj_weight`). Discovery reads it per *use*, so a merged
 * initializer yields one parameter per distinct torch parameter, and a folded transpose is marked
 * as such. Without a record (other exporters, ortfuse's own builder graphs) parameters are found by
 * their graph role: weight operand of MatMul/Gemm (directly or through Transpose), embedding
 * table gathered by input ids, bias added to a MatMul, norm scale; and module-path names.
 */
import type { Model, Node, Value } from '../ir/graph.js';
import { isFloatType } from '../autodiff/dtype.js';
import { BUFFER_PATTERNS, PARAMETER_NAME } from '../autodiff/training.js';
import { dottedName, placeholderKind, torchRecord } from './torch-record.js';

/** One read of a parameter: `node.input(index)` is `value`, in torch layout or transposed. */
export interface ParameterUse {
  value: Value;
  node: Node;
  index: number;
  /** The value holds the parameter transposed (a folded `Transpose(W)`). */
  transposed: boolean;
}

export interface DiscoveredParameter {
  /** The torch name (`model.layers.0.mlp.up_proj.weight`); the initializer's name when unknown. */
  name: string;
  /** Other torch names of the same tensor (tied weights: `lm_head.weight`). */
  aliases: string[];
  /** Shape in torch layout. */
  shape: number[];
  uses: ParameterUse[];
  /** How it was found: the exporter's record, or its role in the graph. */
  source: 'torch-record' | 'graph-role';
}

export interface ParameterDiscovery {
  parameters: DiscoveredParameter[];
  /** Float initializers that are buffers (rotary inv_freq, caches) or constants, by initializer name. */
  nonParameters: { name: string; kind: 'buffer' | 'constant'; size: number }[];
  /** 'torch-record' when the model carries torch's node records, else 'graph-roles'. */
  method: 'torch-record' | 'graph-roles';
}


const ADD_LIKE = new Set(['Add', 'Sub']);

/** The placeholder of `rec.args` that use `(node, index)` reads, by the consuming op's role. */
function pickArg(node: Node, params: string[]): string | undefined {
  if (params.length <= 1) return params[0];
  // linear(x, w, b) → MatMul/Transpose read w, Add reads b; layer_norm(x, s, w, b) likewise.
  return ADD_LIKE.has(node.opType) ? params[params.length - 1] : params[0];
}

/** True when `node` reads `v` at `index` as a weight already transposed (x · Wᵀ folded). */
function readsTransposed(node: Node, index: number, linear: boolean): boolean {
  if (node.opType === 'MatMul') return index === 1 && linear;
  if (node.opType === 'Gemm') return index === 1 && node.attrInt('transB', 0) === 0 && linear;
  return false;
}

function floatInitializers(m: Model): Value[] {
  return m.graph.initializers.filter((v) => isFloatType(v.initializer!.dtype));
}

/** True when any node of the main graph carries torch's FX record. */
export function hasTorchRecord(m: Model): boolean {
  return m.graph.nodes.some((n) => torchRecord(n) !== undefined);
}

/** Find the parameters of `m` (does not change the model). */
export function discoverParameters(m: Model): ParameterDiscovery {
  return hasTorchRecord(m) ? byRecord(m) : byRole(m);
}

function byRecord(m: Model): ParameterDiscovery {
  const order = new Map(m.graph.nodes.map((n, i) => [n, i]));
  // placeholder → its uses, and the torch names its uses' module scopes give it
  const found = new Map<string, { uses: ParameterUse[]; names: { name: string; at: number }[]; leaf?: string }>();
  const nonParameters: ParameterDiscovery['nonParameters'] = [];
  for (const v of floatInitializers(m)) {
    if (v.initializer!.size <= 1) {
      nonParameters.push({ name: v.name, kind: 'constant', size: v.initializer!.size });
      continue;
    }
    let kind: 'buffer' | 'constant' | undefined;
    for (const u of v.uses()) {
      const rec = torchRecord(u.node);
      if (!rec) continue;
      const params = rec.args.filter((a) => placeholderKind(a) === 'parameter');
      const arg = pickArg(u.node, params);
      if (!arg) {
        if (rec.args.some((a) => placeholderKind(a) === 'buffer')) kind = 'buffer';
        continue;
      }
      const e = found.get(arg) ?? { uses: [], names: [] };
      found.set(arg, e);
      e.uses.push({ value: v, node: u.node, index: u.index, transposed: readsTransposed(u.node, u.index, rec.target.startsWith('aten.linear')) });
      const at = order.get(u.node) ?? Number.MAX_SAFE_INTEGER;
      const scope = [...rec.scopes].reverse().find((s) => dottedName(arg, s) !== undefined);
      if (scope) {
        const name = dottedName(arg, scope)!;
        e.leaf = name.slice(scope.length + 1);
        e.names.push({ name, at });
      } else if (rec.scopes.length) e.names.push({ name: `${rec.scopes[rec.scopes.length - 1]}.\0`, at }); // leaf filled below
    }
    if (![...found.values()].some((e) => e.uses.some((x) => x.value === v)))
      nonParameters.push({ name: v.name, kind: kind ?? (BUFFER_PATTERNS.some((p) => p.test(v.name)) ? 'buffer' : 'constant'), size: v.initializer!.size });
  }
  const parameters: DiscoveredParameter[] = [];
  for (const [arg, e] of found) {
    const leaf = e.leaf;
    const names = e.names
      .sort((a, b) => a.at - b.at)
      .map((x) => (x.name.endsWith('.\0') ? (leaf ? x.name.slice(0, -1) + leaf : undefined) : x.name))
      .filter((x): x is string => !!x);
    const unique = [...new Set(names)];
    if (!unique.length) unique.push(arg.replace(/^p_/, ''));
    const first = e.uses[0];
    const dims = first.value.initializer!.dims;
    parameters.push({
      name: unique[0],
      aliases: unique.slice(1),
      shape: first.transposed ? [...dims].reverse() : dims.slice(),
      uses: e.uses,
      source: 'torch-record',
    });
  }
  parameters.sort((a, b) => (order.get(a.uses[0].node) ?? 0) - (order.get(b.uses[0].node) ?? 0));
  return { parameters, nonParameters, method: 'torch-record' };
}

/** The graph role of a float initializer `v`, or undefined when it has none a parameter would have. */
function role(v: Value, inputIds: Value | undefined): { transposed: boolean } | undefined {
  const t = v.initializer!;
  if (t.size <= 1 || BUFFER_PATTERNS.some((p) => p.test(v.name))) return undefined;
  let transposed: boolean | undefined;
  for (const u of v.uses()) {
    const n = u.node;
    const perm = n.opType === 'Transpose' ? n.attrInts('perm', []) : [];
    const viaTranspose = n.opType === 'Transpose' && t.dims.length === 2 && (perm.length === 0 || (perm[0] === 1 && perm[1] === 0))
      && n.outputs[0].uses().some((w) => (w.node.opType === 'MatMul' || w.node.opType === 'Gemm') && w.index === 1);
    if (viaTranspose || (n.opType === 'Gemm' && u.index === 1) || (n.opType === 'Gather' && u.index === 0 && (!inputIds || n.input(1) === inputIds))) transposed ??= false;
    else if (n.opType === 'MatMul' && u.index === 1 && t.dims.length === 2) transposed ??= true;
    else if (t.dims.length === 1 && (ADD_LIKE.has(n.opType) || n.opType === 'Mul' || n.domain === 'ai.ortfuse' || /Normalization$/.test(n.opType))) transposed ??= false;
  }
  return transposed === undefined ? undefined : { transposed };
}

function byRole(m: Model): ParameterDiscovery {
  const inputIds = m.graph.inputs.find((v) => v.name === 'input_ids');
  const parameters: DiscoveredParameter[] = [];
  const nonParameters: ParameterDiscovery['nonParameters'] = [];
  const floats = floatInitializers(m);
  const dotted = floats.some((v) => PARAMETER_NAME.test(v.name));
  for (const v of floats) {
    const r = role(v, inputIds);
    // Module-path names count as parameters too (builder graphs: every weight is named so).
    const named = dotted && PARAMETER_NAME.test(v.name) && v.initializer!.size > 1 && !BUFFER_PATTERNS.some((p) => p.test(v.name));
    if (!r && !named) {
      nonParameters.push({ name: v.name, kind: BUFFER_PATTERNS.some((p) => p.test(v.name)) ? 'buffer' : 'constant', size: v.initializer!.size });
      continue;
    }
    // Without a record a folded transpose keeps its layout: the data stay as the graph reads them.
    parameters.push({
      name: v.name,
      aliases: [],
      shape: v.initializer!.dims.slice(),
      uses: v.uses().map((u) => ({ value: v, node: u.node, index: u.index, transposed: false })),
      source: 'graph-role',
    });
  }
  return { parameters, nonParameters, method: 'graph-roles' };
}
