/**
 * The inference driver: walks a model's graphs in order, runs each node's rule, merges the result
 * into the outputs' types (never losing information, reporting conflicts) and tracks the values of
 * small integer tensors. Model-local functions are inferred per call site on a type overlay, and
 * their bodies then get the join of all call sites' types.
 */
import { DataType } from '../../onnx/schema.js';
import type { Attr, AttrType, Graph, Model, ModelFunction, Node, Value } from '../graph.js';
import type { Tensor } from '../tensor.js';
import type { TensorType, ValueType } from '../types.js';
import { isIntType, tt, type InferContext, type InferRule, type KnownValue } from './context.js';
import { MAX_TRACKED, propagateValue } from './data.js';
import { joinTypes, mergeType } from './merge.js';

/** A declared type that disagrees with the inferred one (the declared type is kept). */
export interface InferConflict {
  value: Value;
  node?: Node;
  message: string;
}

/** What inference found besides the types it wrote. */
export interface InferReport {
  conflicts: InferConflict[];
  /** Nodes whose rule threw (their outputs were left as they were). */
  failures: { node: Node; message: string }[];
  /** `domain::op` of nodes with no rule and no model-local function. */
  unknownOps: string[];
}

interface Frame {
  /** Type overlay of a function instance; undefined = read and write `value.type`. */
  types?: Map<Value, ValueType>;
  known: Map<Value, KnownValue>;
  caller?: { node: Node; fn: ModelFunction; frame: Frame };
  opsets: Map<string, number>;
  visited: Set<Graph>;
}

const ATTR_TYPES: Record<number, AttrType> = { 1: 'FLOAT', 2: 'INT', 3: 'STRING', 6: 'FLOATS', 7: 'INTS', 8: 'STRINGS' };
const initValues = new WeakMap<Tensor, KnownValue | null>();

function tracked(elem: number | undefined): boolean {
  return isIntType(elem) || elem === DataType.BOOL;
}

/** Initializers and Constant values are also known for small float tensors (Range bounds). */
function tensorValue(t: Tensor | undefined): KnownValue | undefined {
  if (!t || !(tracked(t.dtype) || t.dtype === DataType.FLOAT || t.dtype === DataType.DOUBLE) || t.size > MAX_TRACKED || !t.inMemory) return undefined;
  let v = initValues.get(t);
  if (v === undefined) {
    v = { shape: t.dims.slice(), values: t.toNumbers() };
    initValues.set(t, v);
  }
  return v ?? undefined;
}

export class InferEngine {
  readonly report: InferReport = { conflicts: [], failures: [], unknownOps: [] };
  private instances = new Map<ModelFunction, Map<Value, ValueType>[]>();
  private unknown = new Set<string>();
  private active = new Set<ModelFunction>();

  constructor(private model: Model, private builtins: Record<string, InferRule>, private custom: Record<string, InferRule>) {}

  run(): InferReport {
    const m = this.model;
    this.graph(m.graph, { known: new Map(), opsets: m.opsetImports, visited: new Set() });
    for (const fn of m.functions) {
      const opsets = new Map([...m.opsetImports, ...fn.opsetImports]);
      const insts = this.instances.get(fn);
      if (!insts?.length) {
        this.graph(fn.body, { known: new Map(), opsets, visited: new Set() });
        continue;
      }
      const direct: Frame = { known: new Map(), opsets, visited: new Set() };
      for (const v of bodyValues(fn.body)) {
        const t = insts.map((i) => i.get(v)).reduce((a, b) => (a && b ? joinTypes(a, b) : undefined));
        if (t) this.setType(v, t, direct, v.producer);
      }
    }
    this.report.unknownOps = [...this.unknown].sort();
    return this.report;
  }

  private typeOf(v: Value, f: Frame): ValueType | undefined {
    const t = f.types?.get(v) ?? v.type;
    if (t || !v.initializer) return t;
    return tt(v.initializer.dtype, v.initializer.dims.slice());
  }

  private setType(v: Value, t: ValueType, f: Frame, node?: Node): void {
    const r = mergeType(this.typeOf(v, f), t);
    if (r.conflict) {
      const where = node ? ` (output of ${node.label})` : '';
      this.report.conflicts.push({ value: v, node, message: `value '${v.name}'${where}: ${r.conflict}` });
    }
    if (!r.type) return;
    if (f.types) f.types.set(v, r.type);
    else if (r.type !== v.type) v.type = r.type;
  }

  private knownValue(v: Value, f: Frame): KnownValue | undefined {
    return f.known.get(v) ?? tensorValue(v.initializer);
  }

  private graph(g: Graph, f: Frame): void {
    f.visited.add(g);
    for (const n of g.nodes) this.node(n, f);
  }

  private node(n: Node, f: Frame): void {
    const dom = n.domain === 'ai.onnx' ? '' : n.domain;
    const rule = this.custom[`${dom}::${n.opType}`] ?? (dom === '' ? this.builtins[n.opType] : undefined);
    const c = this.context(n, f);
    // A rule wins; a model-local function body is inferred too (typing the body, refining the
    // outputs, and reporting where body and rule disagree).
    const fn = dom === '' ? undefined : this.model.findFunction(n.domain, n.opType, n.overload);
    const results: (ValueType | undefined)[][] = [];
    try {
      if (rule) results.push(rule(n, c));
    } catch (e) {
      this.report.failures.push({ node: n, message: `${n.label}: ${(e as Error).message}` });
    }
    if (fn) results.push(this.callFunction(n, fn, f) ?? []);
    else if (!rule) this.unknown.add(`${dom}::${n.opType}`);
    for (const g of n.subgraphs()) if (!f.visited.has(g)) this.graph(g, f);
    for (const outs of results) outs.forEach((t, i) => t && n.outputs[i] && this.setType(n.outputs[i], t, f, n));
    const out = n.outputs[0];
    const ot = out && this.typeOf(out, f);
    // Dims are tracked in integer tensors, and in float ones that hold casted dims (Range bounds).
    if (!out || ot?.kind !== 'tensor' || !(tracked(ot.elemType) || ot.elemType === DataType.FLOAT || ot.elemType === DataType.DOUBLE)) return;
    const known = dom === '' && n.opType === 'Constant' ? constantValue(c) : dom === '' ? propagateValue(n, c, ot) : undefined;
    if (known) f.known.set(out, known);
  }

  private callFunction(n: Node, fn: ModelFunction, f: Frame): (ValueType | undefined)[] | undefined {
    if (this.active.has(fn)) return undefined; // recursive function: not inferred
    this.active.add(fn);
    const inst: Frame = {
      types: new Map(), known: new Map(), caller: { node: n, fn, frame: f },
      opsets: new Map([...this.model.opsetImports, ...fn.opsetImports]), visited: new Set(),
    };
    fn.body.inputs.forEach((v, i) => {
      const a = n.inputs[i];
      const t = a && this.typeOf(a, f);
      if (t) this.setType(v, t, inst);
      const k = a && this.knownValue(a, f);
      if (k) inst.known.set(v, k);
    });
    try {
      this.graph(fn.body, inst);
    } finally {
      this.active.delete(fn);
    }
    let list = this.instances.get(fn);
    if (!list) this.instances.set(fn, (list = []));
    list.push(inst.types!);
    return fn.body.outputs.map((v) => this.typeOf(v, inst));
  }

  /** A function that restores the types and known values of `g`'s values and the report. */
  private snapshot(g: Graph, f: Frame): () => void {
    const values = bodyValues(g);
    const types = values.map((v) => (f.types ? f.types.get(v) : v.type));
    const known = values.map((v) => f.known.get(v));
    const [nc, nf] = [this.report.conflicts.length, this.report.failures.length];
    return () => {
      values.forEach((v, i) => {
        if (f.types) types[i] ? f.types.set(v, types[i]!) : f.types.delete(v);
        else v.type = types[i];
        known[i] ? f.known.set(v, known[i]!) : f.known.delete(v);
      });
      this.report.conflicts.length = nc;
      this.report.failures.length = nf;
    };
  }

  private context(n: Node, f: Frame): InferContext {
    const input = (i: number): Value | null => n.inputs[i] ?? null;
    const type = (i: number): TensorType | undefined => {
      const v = input(i);
      const t = v ? this.typeOf(v, f) : undefined;
      return t?.kind === 'tensor' ? t : undefined;
    };
    const value = (i: number): KnownValue | undefined => {
      const v = input(i);
      return v ? this.knownValue(v, f) : undefined;
    };
    const attr = (name: string): Attr | undefined => resolveAttr(n, name, f);
    const typed = <T>(name: string, t: AttrType, conv: (x: any) => T): T | undefined => {
      const a = attr(name);
      return a?.type === t ? conv(a.value) : undefined;
    };
    const dom = n.domain === 'ai.onnx' ? '' : n.domain;
    return {
      opset: f.opsets.get(dom) ?? (dom === '' ? (f.opsets.get('ai.onnx') ?? 0) : 0),
      type,
      elem: (i) => type(i)?.elemType || undefined,
      shape: (i) => type(i)?.shape,
      has: (i) => input(i) !== null,
      value,
      ints: (i) => {
        const k = value(i);
        return k && k.values.every((d) => typeof d === 'number') ? (k.values as number[]) : undefined;
      },
      attr,
      attrInt: (name) => typed(name, 'INT', Number),
      attrInts: (name) => typed(name, 'INTS', (xs: any[]) => xs.map(Number)),
      attrFloat: (name) => typed(name, 'FLOAT', Number),
      attrString: (name) => typed(name, 'STRING', (s: Uint8Array) => new TextDecoder().decode(s)),
      attrTensor: (name) => typed(name, 'TENSOR', (t: Tensor) => t),
      attrGraph: (name) => typed(name, 'GRAPH', (g: Graph) => g),
      inferSubgraph: (g, inputTypes, opts) => {
        const undo = opts?.tentative ? this.snapshot(g, f) : undefined;
        inputTypes.forEach((t, i) => t && g.inputs[i] && this.setType(g.inputs[i], t, f));
        this.graph(g, f);
        const outs = g.outputs.map((v) => this.typeOf(v, f));
        undo?.();
        return outs;
      },
    };
  }
}

/** An attribute, following `ref_attr_name` to the calling node (or the function's default). */
function resolveAttr(n: Node, name: string, f: Frame): Attr | undefined {
  const a = n.attributes.get(name);
  if (!a?.refAttrName) return a;
  const call = f.caller;
  if (!call) return undefined;
  const fromCaller = resolveAttr(call.node, a.refAttrName, call.frame);
  if (fromCaller) return fromCaller;
  const p = call.fn.attributeProtos.find((x: any) => x.name === a.refAttrName);
  const type = p && ATTR_TYPES[p.type];
  if (!type) return undefined;
  const value = { FLOAT: p.f, INT: BigInt(String(p.i ?? 0)), STRING: p.s, FLOATS: p.floats, INTS: (p.ints ?? []).map((x: any) => BigInt(String(x))), STRINGS: p.strings }[type as string];
  return { name, type, value };
}

function constantValue(c: InferContext): KnownValue | undefined {
  const t = tensorValue(c.attrTensor('value'));
  if (t) return t;
  const i = c.attrInt('value_int');
  if (i !== undefined) return { shape: [], values: [i] };
  const is = c.attrInts('value_ints');
  return is && is.length <= MAX_TRACKED ? { shape: [is.length], values: is } : undefined;
}

/** Every value defined in a function body (formal inputs, node outputs, subgraph inputs). */
function bodyValues(g: Graph): Value[] {
  const out = [...g.inputs];
  for (const n of g.nodes) {
    out.push(...n.outputs);
    for (const sg of n.subgraphs()) out.push(...bodyValues(sg));
  }
  return out;
}
