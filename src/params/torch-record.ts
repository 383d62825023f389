/**
 * What torch's dynamo exporter records on each node (NodeProto.metadata_props):
 * - `pkg.torch.onnx.fx_node`: the FX node the ONNX node came from, e.g.
 *   `%linear : [num_users=1] = call_function[target=torch.ops.aten.linear.default](args = (%mul_113, %p_model_layers_0_self_attn_q_proj_weight, %p_model_layers_0_self_attn_q_proj_bias), kwargs = {})`.
 *   Placeholders name the module's parameters `p_<path with _>`, buffers `b_…`, lifted constants `c_…`.
 * - `pkg.torch.onnx.name_scopes`: the module path of that FX node, e.g.
 *   `['', 'model', 'model.layers.0', 'model.layers.0.self_attn', 'model.layers.0.self_attn.q_proj', 'linear']`.
 * Several ONNX nodes can come from one FX node (linear → MatMul + Add).
 */
import type { Node } from '../ir/graph.js';

export interface TorchRecord {
  /** The aten target, e.g. `aten.linear.default`. */
  target: string;
  /** The FX node's positional arguments (`%x` → `x`; literals kept as written). */
  args: string[];
  /** Module paths enclosing the FX node, outermost first ('' and the node's own name dropped). */
  scopes: string[];
}

/** A node's metadata entry `key`, if any. */
export function nodeMeta(n: Node, key: string): string | undefined {
  const props = n.extra.metadata_props as { key: string; value: string }[] | undefined;
  return props?.find((p) => p.key === key)?.value;
}

/** Split `a, (b, c), d` at top-level commas. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last) out.push(last);
  return out;
}

/** The exporter's record of `n`, or undefined when the node carries none (other exporters, our own nodes). */
export function torchRecord(n: Node): TorchRecord | undefined {
  const fx = nodeMeta(n, 'pkg.torch.onnx.fx_node');
  if (!fx) return undefined;
  const target = /target=(?:torch\.ops\.)?([\w.]+)/.exec(fx)?.[1] ?? '';
  const a = fx.indexOf('args = (');
  let args: string[] = [];
  if (a >= 0) {
    let depth = 0, end = a + 7;
    for (; end < fx.length; end++) {
      if (fx[end] === '(') depth++;
      else if (fx[end] === ')' && --depth === 0) break;
    }
    args = splitTop(fx.slice(a + 8, end)).map((x) => (x.startsWith('%') ? x.slice(1) : x));
  }
  let scopes: string[] = [];
  const ns = nodeMeta(n, 'pkg.torch.onnx.name_scopes');
  if (ns) {
    const names = [...ns.matchAll(/'([^']*)'/g)].map((m) => m[1]);
    scopes = names.slice(0, -1).filter((s) => s !== '');
  }
  return { target, args, scopes };
}

/** A placeholder kind by the exporter's prefix: parameter, buffer or lifted constant. */
export function placeholderKind(arg: string): 'parameter' | 'buffer' | 'constant' | undefined {
  if (arg.startsWith('p_')) return 'parameter';
  if (arg.startsWith('b_')) return 'buffer';
  if (arg.startsWith('c_')) return 'constant';
  return undefined;
}

/**
 * The dotted torch name of placeholder `arg` (`p_model_layers_0_mlp_up_proj_weight`) given a module
 * path that encloses its use (`model.layers.0.mlp.up_proj`): `model.layers.0.mlp.up_proj.weight`.
 * Undefined when the path is not a prefix of the placeholder.
 */
export function dottedName(arg: string, scope: string): string | undefined {
  const flat = arg.replace(/^[pbc]_/, '');
  const prefix = scope.replace(/\./g, '_');
  if (!flat.startsWith(`${prefix}_`)) return undefined;
  return `${scope}.${flat.slice(prefix.length + 1)}`;
}
