/**
 * The graph IR: Model / Graph / Node / Value. A Value knows its producer and its uses; `uses()`
 * returns a snapshot so rewrites can edit while iterating. Structural edits go through
 * `commit` (src/ir/commit.ts); the small primitives here keep producer/use links consistent.
 */
import { fail } from '../errors.js';
import type { Tensor } from './tensor.js';
import { formatType, type TensorType, type ValueType } from './types.js';

export interface Use {
  node: Node;
  index: number;
}

export class Value {
  /** Type from the model (input/output/value_info) or from shape inference. */
  type?: ValueType;
  producer?: Node;
  /** Index of this value among its producer's outputs. */
  producerIndex = -1;
  /** Constant data when the value is an initializer. */
  initializer?: Tensor;
  /** Doc string and metadata from the model's ValueInfoProto, kept for lossless saving. */
  info?: { doc_string?: string; metadata_props?: any[]; typeProto?: any; typeOf?: ValueType };
  private _uses: Use[] = [];

  constructor(public graph: Graph, public name: string) {}

  /** Snapshot of the nodes reading this value. */
  uses(): Use[] {
    return this._uses.slice();
  }

  get useCount(): number {
    return this._uses.length;
  }

  /** @internal */ _addUse(u: Use): void {
    this._uses.push(u);
  }

  /** @internal */ _removeUse(node: Node, index: number): void {
    const i = this._uses.findIndex((u) => u.node === node && u.index === index);
    if (i >= 0) this._uses.splice(i, 1);
  }

  isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }

  isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  /** The tensor type, or undefined for non-tensor or unknown types. */
  get tensorType(): TensorType | undefined {
    return this.type?.kind === 'tensor' ? this.type : undefined;
  }

  toString(): string {
    return `'${this.name}' (${formatType(this.type)})`;
  }
}

export type AttrType =
  | 'FLOAT' | 'INT' | 'STRING' | 'TENSOR' | 'GRAPH' | 'SPARSE_TENSOR' | 'TYPE_PROTO'
  | 'FLOATS' | 'INTS' | 'STRINGS' | 'TENSORS' | 'GRAPHS' | 'SPARSE_TENSORS' | 'TYPE_PROTOS' | 'UNDEFINED';

/** One attribute. `proto` is the attribute as loaded; it is written back unless the value changed. */
export interface Attr {
  name: string;
  type: AttrType;
  value: any;
  /** For function bodies: the attribute refers to the calling node's attribute of this name. */
  refAttrName?: string;
  docString?: string;
  proto?: any;
}

export class Node {
  inputs: (Value | null)[] = [];
  outputs: Value[] = [];
  attributes = new Map<string, Attr>();
  name = '';
  domain = '';
  overload?: string;
  docString?: string;
  /** Fields of NodeProto not modelled here (metadata_props, device_configurations), kept as loaded. */
  extra: Record<string, any> = {};

  constructor(public graph: Graph, public opType: string) {}

  /** `domain::OpType` for messages; the default domain prints as the bare op type. */
  get qualifiedOp(): string {
    return this.domain && this.domain !== 'ai.onnx' ? `${this.domain}::${this.opType}` : this.opType;
  }

  /** The `(name, op)` label used in error messages. */
  get label(): string {
    return `node '${this.name || '<unnamed>'}' (${this.qualifiedOp})`;
  }

  input(i: number): Value | null {
    return this.inputs[i] ?? null;
  }

  /** Replace input `i` (null removes it from the use lists but keeps the slot). */
  setInput(i: number, v: Value | null): void {
    const old = this.inputs[i];
    if (old) old._removeUse(this, i);
    while (this.inputs.length <= i) this.inputs.push(null);
    this.inputs[i] = v;
    if (v) v._addUse({ node: this, index: i });
  }

  /** Detach all inputs (used when a node is removed). */
  detachInputs(): void {
    this.inputs.forEach((v, i) => v?._removeUse(this, i));
  }

  attr(name: string): Attr | undefined {
    return this.attributes.get(name);
  }

  attrInt(name: string, dflt?: number): number {
    const a = this.attributes.get(name);
    if (!a) return dflt ?? fail('invalid', `${this.label} is missing attribute '${name}'`);
    if (a.type !== 'INT') fail('invalid', `${this.label}: attribute '${name}' is ${a.type}, expected INT`);
    return Number(a.value);
  }

  attrInts(name: string, dflt?: number[]): number[] {
    const a = this.attributes.get(name);
    if (!a) return dflt ?? fail('invalid', `${this.label} is missing attribute '${name}'`);
    if (a.type !== 'INTS') fail('invalid', `${this.label}: attribute '${name}' is ${a.type}, expected INTS`);
    return (a.value as bigint[]).map(Number);
  }

  attrFloat(name: string, dflt?: number): number {
    const a = this.attributes.get(name);
    if (!a) return dflt ?? fail('invalid', `${this.label} is missing attribute '${name}'`);
    if (a.type !== 'FLOAT') fail('invalid', `${this.label}: attribute '${name}' is ${a.type}, expected FLOAT`);
    return a.value as number;
  }

  attrString(name: string, dflt?: string): string {
    const a = this.attributes.get(name);
    if (!a) return dflt ?? fail('invalid', `${this.label} is missing attribute '${name}'`);
    if (a.type !== 'STRING') fail('invalid', `${this.label}: attribute '${name}' is ${a.type}, expected STRING`);
    return new TextDecoder().decode(a.value as Uint8Array);
  }

  attrTensor(name: string): Tensor | undefined {
    const a = this.attributes.get(name);
    return a?.type === 'TENSOR' ? (a.value as Tensor) : undefined;
  }

  /** Set an attribute from a plain JS value (see `makeAttr`). */
  setAttr(a: Attr): void {
    this.attributes.set(a.name, a);
  }

  /** Graphs held in GRAPH / GRAPHS attributes (Loop, If, Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes.values()) {
      if (a.type === 'GRAPH' && a.value) out.push(a.value as Graph);
      else if (a.type === 'GRAPHS') out.push(...(a.value as Graph[]));
    }
    return out;
  }

  toString(): string {
    return this.label;
  }
}

/** A graph: the main graph, a subgraph of a Loop/If/Scan, or a function body. */
export class Graph {
  name = '';
  nodes: Node[] = [];
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Initializers in file order (values with `initializer` set). */
  initializers: Value[] = [];
  docString?: string;
  /** value_info entries in file order, for lossless saving. */
  valueInfoOrder: Value[] = [];
  /** Fields of GraphProto not modelled (sparse_initializer, quantization_annotation, metadata_props). */
  extra: Record<string, any> = {};
  /** The node owning this graph as an attribute (undefined for the main graph and functions). */
  owner?: Node;

  constructor(public model: Model) {}

  /** A new value with a unique name derived from `base`. */
  createValue(base: string, type?: ValueType): Value {
    const v = new Value(this, this.model.freshName(base));
    v.type = type;
    return v;
  }

  /** A node appended to the graph (or inserted before `before`). */
  addNode(
    opType: string,
    inputs: (Value | null)[],
    outputs: Value[],
    opts: { domain?: string; name?: string; attrs?: Attr[]; before?: Node } = {},
  ): Node {
    const n = new Node(this, opType);
    n.domain = opts.domain ?? '';
    n.name = opts.name ?? this.model.freshNodeName(opType);
    inputs.forEach((v, i) => n.setInput(i, v));
    outputs.forEach((v, i) => {
      if (v.producer) fail('invalid', `value '${v.name}' already has a producer ${v.producer.label}`);
      v.producer = n;
      v.producerIndex = i;
      n.outputs.push(v);
    });
    for (const a of opts.attrs ?? []) n.attributes.set(a.name, a);
    if (opts.before) {
      const i = this.nodes.indexOf(opts.before);
      this.nodes.splice(i < 0 ? this.nodes.length : i, 0, n);
    } else this.nodes.push(n);
    return n;
  }

  /** Remove nodes whose outputs are unused (checks; throws before changing anything). */
  removeNodes(nodes: Iterable<Node>): void {
    const set = new Set(nodes);
    for (const n of set)
      for (const o of n.outputs) {
        if (o.isGraphOutput()) fail('invalid', `cannot remove ${n.label}: its output '${o.name}' is a graph output`);
        for (const u of o.uses())
          if (!set.has(u.node)) fail('invalid', `cannot remove ${n.label}: '${o.name}' is still used by ${u.node.label}`);
      }
    for (const n of set) n.detachInputs();
    this.nodes = this.nodes.filter((n) => !set.has(n));
    for (const n of set) for (const o of n.outputs) o.producer = undefined;
  }

  /** Point every use of `from` (and graph outputs) at `to`. */
  replaceAllUses(from: Value, to: Value): void {
    for (const u of from.uses()) u.node.setInput(u.index, to);
    this.outputs = this.outputs.map((v) => (v === from ? to : v));
  }

  /** All nodes of this graph and of nested subgraphs, depth-first. */
  *allNodes(): Generator<Node> {
    for (const n of this.nodes) {
      yield n;
      for (const g of n.subgraphs()) yield* g.allNodes();
    }
  }

  /** Values read inside this graph (and its subgraphs) that are defined outside it. */
  outerReferences(): Set<Value> {
    const out = new Set<Value>();
    for (const n of this.allNodes())
      for (const v of n.inputs) if (v && !isWithin(v.graph, this)) out.add(v);
    for (const v of this.outputs) if (!isWithin(v.graph, this)) out.add(v);
    return out;
  }

  /** Find a value by name in this graph's scope (not in enclosing graphs). */
  findValue(name: string): Value | undefined {
    for (const v of this.inputs) if (v.name === name) return v;
    for (const v of this.initializers) if (v.name === name) return v;
    for (const n of this.nodes) for (const o of n.outputs) if (o.name === name) return o;
    return undefined;
  }
}

/** True if graph `g` is `outer` or nested inside it. */
export function isWithin(g: Graph, outer: Graph): boolean {
  for (let cur: Graph | undefined = g; cur; cur = cur.owner?.graph) if (cur === outer) return true;
  return false;
}

/** A model-local function (FunctionProto): a body graph plus its interface. */
export interface ModelFunction {
  domain: string;
  name: string;
  overload?: string;
  /** Attribute names (FunctionProto.attribute) and attributes with defaults (attribute_proto). */
  attributeNames: string[];
  attributeProtos: any[];
  opsetImports: Map<string, number>;
  /** The opset_import list as loaded (written back while `opsetImports` still matches it). */
  opsetProto?: any[];
  /** Body: inputs/outputs are the formal parameters (untyped unless value_info says so). */
  body: Graph;
  extra: Record<string, any>;
}

export class Model {
  irVersion = 10;
  opsetImports = new Map<string, number>();
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: bigint;
  docString?: string;
  graph: Graph;
  functions: ModelFunction[] = [];
  /** Fields of ModelProto not modelled (metadata_props, training_info, configuration). */
  extra: Record<string, any> = {};
  /** Directory that relative external-data locations resolve against. */
  baseDir?: string;
  private names = new Set<string>();
  private counters = new Map<string, number>();
  private nodeNames = new Set<string>();

  constructor() {
    this.graph = new Graph(this);
  }

  /** Register an existing name (used by the loader). */
  reserveName(name: string): void {
    this.names.add(name);
  }

  /** Free a value name that nothing uses any more (a renamed or removed value). */
  releaseName(name: string): void {
    this.names.delete(name);
  }

  reserveNodeName(name: string): void {
    this.nodeNames.add(name);
  }

  /** A value name not used anywhere in the model. */
  freshName(base: string): string {
    return this.fresh(base || 'v', this.names);
  }

  freshNodeName(base: string): string {
    return this.fresh(base || 'node', this.nodeNames);
  }

  private fresh(base: string, set: Set<string>): string {
    if (!set.has(base)) {
      set.add(base);
      return base;
    }
    let i = this.counters.get(base) ?? 1;
    while (set.has(`${base}_${i}`)) i++;
    this.counters.set(base, i + 1);
    const name = `${base}_${i}`;
    set.add(name);
    return name;
  }

  /** The opset version imported for `domain` ('' = default ONNX domain). */
  opset(domain = ''): number | undefined {
    return this.opsetImports.get(domain === 'ai.onnx' ? '' : domain);
  }

  findFunction(domain: string, name: string, overload?: string): ModelFunction | undefined {
    return this.functions.find((f) => f.domain === domain && f.name === name && (f.overload ?? '') === (overload ?? ''));
  }
}
