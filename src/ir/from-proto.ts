/** Decoded ModelProto -> IR. Names are resolved with lexical scoping (subgraphs see outer values). */
import { fail } from '../errors.js';
import { Graph, Model, Node, Value, type Attr, type AttrType, type ModelFunction } from './graph.js';
import { toBigInt, toNumber } from './long.js';
import { Tensor } from './tensor.js';
import type { Dim, ValueType } from './types.js';

const ATTR_TYPES: Record<number, AttrType> = {
  0: 'UNDEFINED', 1: 'FLOAT', 2: 'INT', 3: 'STRING', 4: 'TENSOR', 5: 'GRAPH', 6: 'FLOATS', 7: 'INTS', 8: 'STRINGS',
  9: 'TENSORS', 10: 'GRAPHS', 11: 'SPARSE_TENSOR', 12: 'SPARSE_TENSORS', 13: 'TYPE_PROTO', 14: 'TYPE_PROTOS',
};

/** Own, present fields of a decoded message that are not in `known`. */
export function extraFields(p: any, known: string[]): Record<string, any> {
  const out: Record<string, any> = {};
  for (const k of Object.keys(p)) {
    if (known.includes(k)) continue;
    const v = p[k];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out;
}

export function has(p: any, key: string): boolean {
  return p != null && Object.prototype.hasOwnProperty.call(p, key) && p[key] != null;
}

/** TypeProto -> IR type (the proto itself is remembered for lossless saving). */
export function typeFromProto(tp: any): ValueType | undefined {
  if (!tp) return undefined;
  const tt = tp.tensor_type;
  if (tt) {
    let shape: Dim[] | undefined;
    if (has(tt, 'shape')) {
      shape = (tt.shape.dim ?? []).map((d: any): Dim => {
        if (has(d, 'dim_value')) return toNumber(d.dim_value);
        if (has(d, 'dim_param') && d.dim_param !== '') return d.dim_param as string;
        return null;
      });
    }
    return { kind: 'tensor', elemType: tt.elem_type ?? 0, shape };
  }
  return { kind: 'other', proto: tp };
}

type Scope = { values: Map<string, Value>; parent?: Scope };

function lookup(scope: Scope, name: string): Value | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const v = s.values.get(name);
    if (v) return v;
  }
  return undefined;
}

export interface LoadContext {
  model: Model;
  baseDir?: string;
  /** Where the graph comes from, for error messages (file name). */
  source: string;
}

export function modelFromProto(p: any, ctx: Omit<LoadContext, 'model'>): Model {
  const model = new Model();
  const c: LoadContext = { ...ctx, model };
  model.baseDir = ctx.baseDir;
  model.irVersion = has(p, 'ir_version') ? toNumber(p.ir_version) : 0;
  for (const o of p.opset_import ?? []) model.opsetImports.set(o.domain ?? '', toNumber(o.version));
  (model as any).opsetProto = p.opset_import;
  if (has(p, 'producer_name')) model.producerName = p.producer_name;
  if (has(p, 'producer_version')) model.producerVersion = p.producer_version;
  if (has(p, 'domain')) model.domain = p.domain;
  if (has(p, 'model_version')) model.modelVersion = toBigInt(p.model_version);
  if (has(p, 'doc_string')) model.docString = p.doc_string;
  model.extra = extraFields(p, ['ir_version', 'opset_import', 'producer_name', 'producer_version', 'domain',
    'model_version', 'doc_string', 'graph', 'functions']);
  if (!p.graph) fail('parse', `${ctx.source}: the model has no graph`);
  reserveNames(model, p.graph);
  for (const f of p.functions ?? []) for (const n of f.node ?? []) reserveNodeNames(model, n);
  model.graph = loadGraph(c, p.graph, undefined, undefined);
  model.functions = (p.functions ?? []).map((f: any) => loadFunction(c, f));
  return model;
}

function reserveNames(model: Model, g: any): void {
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])]) model.reserveName(v.name ?? '');
  for (const t of g.initializer ?? []) model.reserveName(t.name ?? '');
  for (const n of g.node ?? []) reserveNodeNames(model, n);
}

function reserveNodeNames(model: Model, n: any): void {
  if (n.name) model.reserveNodeName(n.name);
  for (const o of n.output ?? []) model.reserveName(o);
  for (const i of n.input ?? []) model.reserveName(i);
  for (const a of n.attribute ?? []) {
    if (a.g) reserveNames(model, a.g);
    for (const g of a.graphs ?? []) reserveNames(model, g);
  }
}

function setInfo(v: Value, info: any): void {
  const t = typeFromProto(info.type);
  if (!v.type && t) v.type = t;
  v.info = { typeProto: has(info, 'type') ? info.type : undefined, typeOf: t };
  if (has(info, 'doc_string')) v.info.doc_string = info.doc_string;
  if (info.metadata_props?.length) v.info.metadata_props = info.metadata_props;
}

function loadGraph(c: LoadContext, gp: any, parent: Scope | undefined, owner: Node | undefined): Graph {
  const g = new Graph(c.model);
  g.owner = owner;
  const where = owner ? `${owner.label} subgraph '${gp.name ?? ''}'` : `graph '${gp.name ?? ''}'`;
  if (has(gp, 'name')) g.name = gp.name;
  if (has(gp, 'doc_string')) g.docString = gp.doc_string;
  g.extra = extraFields(gp, ['node', 'name', 'initializer', 'doc_string', 'input', 'output', 'value_info']);
  const scope: Scope = { values: new Map(), parent };
  const define = (name: string, what: string): Value => {
    if (scope.values.has(name)) fail('invalid', `${c.source}: ${where}: value '${name}' is defined twice (${what})`);
    const v = new Value(g, name);
    scope.values.set(name, v);
    return v;
  };
  for (const ip of gp.input ?? []) {
    const v = define(ip.name ?? '', 'graph input');
    setInfo(v, ip);
    g.inputs.push(v);
  }
  for (const tp of gp.initializer ?? []) {
    const name = tp.name ?? '';
    const v = scope.values.get(name) ?? define(name, 'initializer');
    v.initializer = Tensor.fromProto(tp, c.baseDir);
    // An initializer's type is its tensor's (value_info rarely lists them; external data never does).
    v.type ??= { kind: 'tensor', elemType: v.initializer.dtype, shape: v.initializer.dims.slice() };
    g.initializers.push(v);
  }
  for (const sp of gp.sparse_initializer ?? []) {
    const name = sp.values?.name ?? '';
    if (!scope.values.has(name)) define(name, 'sparse initializer');
  }
  // Pass 1: nodes and their outputs, so inputs can be resolved regardless of node order.
  const nodes: [Node, any][] = [];
  for (const np of gp.node ?? []) {
    const n = new Node(g, np.op_type ?? '');
    n.name = np.name ?? '';
    n.domain = np.domain ?? '';
    if (has(np, 'overload')) n.overload = np.overload;
    if (has(np, 'doc_string')) n.docString = np.doc_string;
    n.extra = extraFields(np, ['input', 'output', 'name', 'op_type', 'domain', 'overload', 'attribute', 'doc_string']);
    (n as any).proto = np;
    (np.output ?? []).forEach((o: string, i: number) => {
      const v = o === '' ? new Value(g, '') : define(o, `output of ${n.label}`);
      v.producer = n;
      v.producerIndex = i;
      n.outputs.push(v);
    });
    g.nodes.push(n);
    nodes.push([n, np]);
  }
  // Pass 2: attributes (subgraphs see this scope) and inputs.
  for (const [n, np] of nodes) {
    for (const ap of np.attribute ?? []) n.attributes.set(ap.name ?? '', loadAttr(c, ap, scope, n));
    (np.input ?? []).forEach((name: string, i: number) => {
      if (name === '') return void n.inputs.push(null);
      const v = lookup(scope, name);
      if (!v) fail('invalid', `${c.source}: ${n.label} reads '${name}', which is not defined (no node, input or initializer produces it)`);
      n.setInput(i, v);
    });
  }
  for (const op of gp.output ?? []) {
    const v = lookup(scope, op.name ?? '');
    if (!v) fail('invalid', `${c.source}: ${where}: output '${op.name}' is not produced by any node`);
    if (!v.info) setInfo(v, op);
    else if (!v.type) v.type = typeFromProto(op.type);
    g.outputs.push(v);
    (g as any).outInfo ??= new Map();
    (g as any).outInfo.set(g.outputs.length - 1, op);
  }
  const dangling: any[] = [];
  for (const vp of gp.value_info ?? []) {
    const v = scope.values.get(vp.name ?? '');
    if (!v || v.info) {
      dangling.push(vp);
      continue;
    }
    setInfo(v, vp);
    g.valueInfoOrder.push(v);
  }
  if (dangling.length) (g as any).danglingValueInfo = dangling;
  return g;
}

function loadAttr(c: LoadContext, ap: any, scope: Scope, owner: Node): Attr {
  let type: AttrType = ATTR_TYPES[ap.type ?? 0] ?? 'UNDEFINED';
  if (type === 'UNDEFINED') type = guessAttrType(ap);
  const a: Attr = { name: ap.name ?? '', type, value: undefined, proto: ap };
  if (has(ap, 'ref_attr_name')) a.refAttrName = ap.ref_attr_name;
  if (has(ap, 'doc_string')) a.docString = ap.doc_string;
  switch (type) {
    case 'FLOAT': a.value = ap.f ?? 0; break;
    case 'INT': a.value = toBigInt(ap.i ?? 0); break;
    case 'STRING': a.value = ap.s ?? new Uint8Array(); break;
    case 'TENSOR': a.value = ap.t ? Tensor.fromProto(ap.t, c.baseDir) : undefined; break;
    case 'GRAPH': a.value = ap.g ? loadGraph(c, ap.g, scope, owner) : undefined; break;
    case 'FLOATS': a.value = ap.floats ?? []; break;
    case 'INTS': a.value = (ap.ints ?? []).map(toBigInt); break;
    case 'STRINGS': a.value = ap.strings ?? []; break;
    case 'TENSORS': a.value = (ap.tensors ?? []).map((t: any) => Tensor.fromProto(t, c.baseDir)); break;
    case 'GRAPHS': a.value = (ap.graphs ?? []).map((g: any) => loadGraph(c, g, scope, owner)); break;
    default: a.value = ap;
  }
  return a;
}

function guessAttrType(ap: any): AttrType {
  if (has(ap, 'g')) return 'GRAPH';
  if (has(ap, 't')) return 'TENSOR';
  if (has(ap, 's')) return 'STRING';
  if (has(ap, 'i')) return 'INT';
  if (has(ap, 'f')) return 'FLOAT';
  if (ap.graphs?.length) return 'GRAPHS';
  if (ap.tensors?.length) return 'TENSORS';
  if (ap.strings?.length) return 'STRINGS';
  if (ap.ints?.length) return 'INTS';
  if (ap.floats?.length) return 'FLOATS';
  return 'UNDEFINED';
}

function loadFunction(c: LoadContext, fp: any): ModelFunction {
  // A function body is a graph whose inputs/outputs are the formal parameters.
  const gp = {
    node: fp.node ?? [],
    input: (fp.input ?? []).map((name: string) => ({ name })),
    output: (fp.output ?? []).map((name: string) => ({ name })),
    value_info: fp.value_info ?? [],
  };
  const body = loadGraph({ ...c, source: `${c.source}: function ${fp.domain ?? ''}.${fp.name ?? ''}` }, gp, undefined, undefined);
  const f: ModelFunction = {
    domain: fp.domain ?? '',
    name: fp.name ?? '',
    attributeNames: fp.attribute ?? [],
    attributeProtos: fp.attribute_proto ?? [],
    opsetImports: new Map((fp.opset_import ?? []).map((o: any) => [o.domain ?? '', toNumber(o.version)])),
    opsetProto: fp.opset_import,
    body,
    extra: extraFields(fp, ['name', 'input', 'output', 'attribute', 'attribute_proto', 'node', 'opset_import',
      'domain', 'overload', 'value_info']),
  };
  if (has(fp, 'overload')) f.overload = fp.overload;
  (f as any).proto = fp;
  return f;
}
