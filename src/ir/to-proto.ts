/**
 * IR -> ModelProto (plain objects that protobufjs encodes). What was loaded and not changed is
 * written back as loaded; tensors are handed to a `TensorSink` that decides between raw_data and
 * external data.
 */
import { sameType, type ValueType } from './types.js';
import { Graph, Model, Value, type Attr, type ModelFunction } from './graph.js';
import { has, typeFromProto } from './from-proto.js';
import { toLong } from './long.js';
import type { Tensor } from './tensor.js';

/** Turns a tensor into a TensorProto (embedding it or writing it to an external file). */
export type TensorSink = (t: Tensor, name: string) => any;

const ATTR_TYPE_IDS: Record<string, number> = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
};

export function typeToProto(t: ValueType): any {
  if (t.kind === 'other') return t.proto;
  const tensor: any = { elem_type: t.elemType };
  if (t.shape)
    tensor.shape = {
      dim: t.shape.map((d) => (d === null ? {} : typeof d === 'number' ? { dim_value: toLong(d) } : { dim_param: d })),
    };
  return { tensor_type: tensor };
}

function valueInfo(v: Value, loaded: any | undefined): any {
  if (loaded && loaded.name === v.name && (v.type === undefined ? !loaded.type : sameType(v.type, typeFromProto(loaded.type))))
    return loaded;
  const out: any = { name: v.name };
  if (v.type) out.type = v.info?.typeOf && v.type === v.info.typeOf ? v.info.typeProto : typeToProto(v.type);
  if (v.info?.doc_string) out.doc_string = v.info.doc_string;
  if (v.info?.metadata_props?.length) out.metadata_props = v.info.metadata_props;
  return out;
}

function infoOf(v: Value): any | undefined {
  if (!v.info) return undefined;
  const out: any = { name: v.name };
  if (v.info.typeProto) out.type = v.info.typeProto;
  if (v.info.doc_string !== undefined) out.doc_string = v.info.doc_string;
  if (v.info.metadata_props?.length) out.metadata_props = v.info.metadata_props;
  return out;
}

function attrToProto(a: Attr, sink: TensorSink): any {
  const graphish = a.type === 'GRAPH' || a.type === 'GRAPHS' || a.type === 'TENSOR' || a.type === 'TENSORS';
  if (a.proto && !graphish) return a.proto;
  const p: any = a.proto ? { ...a.proto } : { name: a.name, type: ATTR_TYPE_IDS[a.type] };
  if (!a.proto) {
    if (a.refAttrName) p.ref_attr_name = a.refAttrName;
    if (a.docString) p.doc_string = a.docString;
  }
  if (a.refAttrName && a.value === undefined) return p;
  switch (a.type) {
    case 'FLOAT': p.f = a.value; break;
    case 'INT': p.i = toLong(a.value); break;
    case 'STRING': p.s = a.value; break;
    case 'TENSOR': if (a.value) p.t = tensorProto(a.value, a.value.proto?.name ?? '', sink, true); break;
    case 'GRAPH': if (a.value) p.g = graphToProto(a.value, sink); break;
    case 'FLOATS': p.floats = a.value; break;
    case 'INTS': p.ints = (a.value as bigint[]).map(toLong); break;
    case 'STRINGS': p.strings = a.value; break;
    case 'TENSORS': p.tensors = (a.value as Tensor[]).map((t) => tensorProto(t, t.proto?.name ?? '', sink, true)); break;
    case 'GRAPHS': p.graphs = (a.value as Graph[]).map((g) => graphToProto(g, sink)); break;
    default: break;
  }
  return p;
}

function tensorProto(t: Tensor, name: string, sink: TensorSink, inAttr = false): any {
  // Attribute tensors stay embedded unless they were external in the source.
  if (inAttr && !t.external && t.proto) return t.proto;
  return sink(t, name);
}

export function graphToProto(g: Graph, sink: TensorSink): any {
  const p: any = { ...g.extra };
  if (g.name !== '' || has(g.extra, 'name')) p.name = g.name;
  if (g.docString !== undefined) p.doc_string = g.docString;
  p.node = g.nodes.map((n) => {
    const orig = (n as any).proto;
    const np: any = { ...n.extra };
    np.input = n.inputs.map((v) => v?.name ?? '');
    np.output = n.outputs.map((v) => v.name);
    if (n.name !== '' || has(orig, 'name')) np.name = n.name;
    np.op_type = n.opType;
    if (n.domain !== '' || has(orig, 'domain')) np.domain = n.domain;
    if (n.overload !== undefined) np.overload = n.overload;
    np.attribute = [...n.attributes.values()].map((a) => attrToProto(a, sink));
    if (n.docString !== undefined) np.doc_string = n.docString;
    return np;
  });
  p.input = g.inputs.map((v) => valueInfo(v, infoOf(v)));
  const outInfo: Map<number, any> | undefined = (g as any).outInfo;
  p.output = g.outputs.map((v, i) => valueInfo(v, outInfo?.get(i)));
  p.initializer = g.initializers.map((v) => tensorProto(v.initializer!, v.name, sink));
  const seen = new Set<Value>([...g.inputs, ...g.outputs, ...g.initializers]);
  const vi: any[] = [];
  const alive = new Set<Value>();
  for (const n of g.nodes) for (const o of n.outputs) alive.add(o);
  for (const v of g.valueInfoOrder) {
    if (seen.has(v) || !alive.has(v) || !v.type) continue;
    seen.add(v);
    vi.push(valueInfo(v, infoOf(v)));
  }
  for (const n of g.nodes)
    for (const o of n.outputs) {
      if (seen.has(o) || !o.type || o.name === '') continue;
      seen.add(o);
      vi.push(valueInfo(o, undefined));
    }
  vi.push(...((g as any).danglingValueInfo ?? []));
  p.value_info = vi;
  return p;
}

function functionToProto(f: ModelFunction, sink: TensorSink): any {
  const body = graphToProto(f.body, sink);
  const p: any = { ...f.extra };
  p.name = f.name;
  p.input = f.body.inputs.map((v) => v.name);
  p.output = f.body.outputs.map((v) => v.name);
  p.attribute = f.attributeNames;
  p.attribute_proto = f.attributeProtos;
  p.node = body.node;
  p.opset_import = opsetsToProto(f.opsetImports, f.opsetProto);
  p.domain = f.domain;
  if (f.overload !== undefined) p.overload = f.overload;
  p.value_info = (f as any).proto ? (f as any).proto.value_info ?? [] : body.value_info.filter((v: any) => v.type);
  return p;
}

function opsetsToProto(map: Map<string, number>, loaded: any[] | undefined): any[] {
  const same = loaded && loaded.length === map.size &&
    loaded.every((o) => map.get(o.domain ?? '') === Number(o.version?.toString() ?? 0));
  if (same) return loaded;
  return [...map].map(([domain, version]) => ({ domain, version: toLong(version) }));
}

export function modelToProto(m: Model, sink: TensorSink): any {
  const p: any = { ...m.extra };
  p.ir_version = toLong(m.irVersion);
  p.opset_import = opsetsToProto(m.opsetImports, (m as any).opsetProto);
  if (m.producerName !== undefined) p.producer_name = m.producerName;
  if (m.producerVersion !== undefined) p.producer_version = m.producerVersion;
  if (m.domain !== undefined) p.domain = m.domain;
  if (m.modelVersion !== undefined) p.model_version = toLong(m.modelVersion);
  if (m.docString !== undefined) p.doc_string = m.docString;
  p.graph = graphToProto(m.graph, sink);
  p.functions = m.functions.map((f) => functionToProto(f, sink));
  return p;
}
