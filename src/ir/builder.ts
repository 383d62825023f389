/**
 * The op builder shared by models/, rewrite patterns and tests:
 *   const y = op.Mul(x, op.Sigmoid(x));            // one output
 *   const [a, b] = op.call('Split', [x], { axis: -1 }, { outputs: 2 });
 *   op.call('RMSNorm', [x, w], { epsilon: 1e-6 }, { domain: 'ai.ortfuse' });
 * The same `Ops` front end drives different sinks: a GraphBuilder adds IR nodes, a pattern
 * builder (src/rewrite) creates pattern nodes.
 */
import { fail } from '../errors.js';
import { DataType } from '../onnx/schema.js';
import { Graph, Model, Node, Value, type Attr } from './graph.js';
import { Tensor } from './tensor.js';
import { tensorType, type Dim } from './types.js';

/** Attribute values accepted by the builder. Integers become INT(S) unless the name is a float attribute. */
export type AttrValue =
  | number | bigint | string | Uint8Array | Tensor | Graph
  | number[] | bigint[] | string[] | Tensor[] | Graph[]
  | { float: number } | { floats: number[] } | Attr;

export type Attrs = Record<string, AttrValue | undefined>;

export interface CallOptions {
  domain?: string;
  outputs?: number;
  name?: string;
}

/** Receives op calls. `A` is the attribute map type (patterns accept constraints there). */
export interface OpSink<V, A = Attrs> {
  isValue(x: unknown): x is V;
  emit(opType: string, inputs: (V | null)[], attrs: A, opts: CallOptions): V[];
}

export type Ops<V, A = Attrs> = {
  [op: string]: (...args: (V | null | undefined | A)[]) => V;
} & {
  call(opType: string, inputs: (V | null | undefined)[], attrs?: A, opts?: CallOptions): V[];
};

export function makeOps<V, A = Attrs>(sink: OpSink<V, A>): Ops<V, A> {
  const call = (opType: string, inputs: (V | null | undefined)[], attrs: A = {} as A, opts: CallOptions = {}): V[] =>
    sink.emit(opType, inputs.map((v) => v ?? null), attrs, opts);
  return new Proxy({ call } as Ops<V, A>, {
    get(target, prop) {
      if (prop === 'call') return call;
      if (typeof prop !== 'string') return undefined;
      return (...args: (V | null | undefined | A)[]) => {
        let attrs = {} as A;
        const last = args[args.length - 1];
        if (last && typeof last === 'object' && !sink.isValue(last) && Object.getPrototypeOf(last) === Object.prototype) {
          attrs = last as A;
          args = args.slice(0, -1);
        }
        return call(prop, args as (V | null | undefined)[], attrs)[0];
      };
    },
  });
}

/** Attributes that ONNX defines as FLOAT although a caller may pass an integral number. */
const FLOAT_ATTRS = new Set([
  'alpha', 'beta', 'epsilon', 'gamma', 'lambd', 'bias', 'ratio', 'scale', 'value_float', 'seed',
  'momentum', 'spatial_scale', 'extrapolation_value', 'cubic_coeff_a', 'fmod_float', 'label_smoothing',
  'norm_coefficient', 'norm_coefficient_post', 'decay_factor', 'threshold',
]);
const FLOATS_ATTRS = new Set(['value_floats', 'scales', 'coefficients']);

export function makeAttr(name: string, v: AttrValue): Attr {
  if (v && typeof v === 'object' && 'type' in (v as object) && 'name' in (v as object)) return { ...(v as Attr), name, proto: undefined };
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || FLOAT_ATTRS.has(name)) return { name, type: 'FLOAT', value: v };
    return { name, type: 'INT', value: BigInt(v) };
  }
  if (typeof v === 'bigint') return { name, type: 'INT', value: v };
  if (typeof v === 'string') return { name, type: 'STRING', value: new TextEncoder().encode(v) };
  if (v instanceof Uint8Array) return { name, type: 'STRING', value: v };
  if (v instanceof Tensor) return { name, type: 'TENSOR', value: v };
  if (v instanceof Graph) return { name, type: 'GRAPH', value: v };
  if (Array.isArray(v)) {
    if (v.length && v[0] instanceof Tensor) return { name, type: 'TENSORS', value: v };
    if (v.length && v[0] instanceof Graph) return { name, type: 'GRAPHS', value: v };
    if (v.length && typeof v[0] === 'string') return { name, type: 'STRINGS', value: (v as string[]).map((s) => new TextEncoder().encode(s)) };
    const nums = v as (number | bigint)[];
    if (FLOATS_ATTRS.has(name) || nums.some((x) => typeof x === 'number' && !Number.isInteger(x)))
      return { name, type: 'FLOATS', value: nums.map(Number) };
    return { name, type: 'INTS', value: nums.map((x) => BigInt(x)) };
  }
  if ('float' in v) return { name, type: 'FLOAT', value: v.float };
  if ('floats' in v) return { name, type: 'FLOATS', value: v.floats };
  return fail('usage', `attribute '${name}': unsupported value ${String(v)}`);
}

export interface BuilderOptions {
  /** Insert new nodes before this node instead of appending. */
  before?: Node;
  /** Written on every node created (metadata `ortfuse.rule`) and used as a name prefix. */
  tag?: string;
  /**
   * Staged nodes are created detached: no use-lists change and the graph's node list is untouched
   * until `commit` applies them (src/ir/commit.ts). Rewrites build staged.
   */
  staged?: boolean;
}

/** `n` is an `op` node a GraphBuilder with `tag: rule` created (its metadata `ortfuse.rule`). */
export function madeBy(n: Node | null | undefined, op: string, rule: string): n is Node {
  return !!n && n.opType === op && !!n.extra.metadata_props?.some((q: { key: string; value: string }) => q.key === 'ortfuse.rule' && q.value === rule);
}

/** Builds nodes into a graph. */
export class GraphBuilder implements OpSink<Value> {
  readonly op: Ops<Value>;
  /** Nodes created by this builder, in creation order. */
  readonly nodes: Node[] = [];

  constructor(readonly graph: Graph, readonly opts: BuilderOptions = {}) {
    this.op = makeOps(this);
  }

  isValue(x: unknown): x is Value {
    return x instanceof Value;
  }

  emit(opType: string, inputs: (Value | null)[], attrs: Attrs, opts: CallOptions): Value[] {
    const g = this.graph;
    const base = opts.name ?? (this.opts.tag ? `${this.opts.tag}/${opType}` : opType);
    const outs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => g.createValue(`${base}_out${i || ''}`.replace(/_out$/, '')));
    const attrList = Object.entries(attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => makeAttr(k, v as AttrValue));
    let node: Node;
    if (this.opts.staged) {
      node = new Node(g, opType);
      node.domain = opts.domain ?? '';
      node.name = g.model.freshNodeName(base);
      node.inputs = inputs.slice();
      outs.forEach((v, i) => {
        v.producer = node;
        v.producerIndex = i;
      });
      node.outputs = outs;
      for (const a of attrList) node.attributes.set(a.name, a);
    } else {
      node = g.addNode(opType, inputs, outs, { domain: opts.domain, name: g.model.freshNodeName(base), attrs: attrList, before: this.opts.before });
    }
    if (this.opts.tag) node.extra.metadata_props = [{ key: 'ortfuse.rule', value: this.opts.tag }];
    this.nodes.push(node);
    return outs;
  }

  /** A graph input. */
  input(name: string, elemType: number, shape?: Dim[]): Value {
    const v = new Value(this.graph, this.graph.model.freshName(name));
    v.type = tensorType(elemType, shape);
    this.graph.inputs.push(v);
    return v;
  }

  /** Make `v` a graph output (renamed to `name` when given and free). */
  output(v: Value, name?: string): Value {
    if (name && name !== v.name) {
      v.name = this.graph.model.freshName(name);
    }
    this.graph.outputs.push(v);
    return v;
  }

  /** An initializer holding `t`. */
  initializer(name: string, t: Tensor): Value {
    const v = new Value(this.graph, this.graph.model.freshName(name));
    v.initializer = t;
    v.type = tensorType(t.dtype, t.dims.slice());
    this.graph.initializers.push(v);
    return v;
  }

  /** A constant initializer from values: int64 by default for integer arrays, float32 otherwise. */
  constant(values: number[] | number, opts: { dtype?: number; dims?: number[]; name?: string } = {}): Value {
    const arr = Array.isArray(values) ? values : [values];
    const dtype = opts.dtype ?? (arr.every(Number.isInteger) ? DataType.INT64 : DataType.FLOAT);
    const dims = opts.dims ?? (Array.isArray(values) ? [arr.length] : []);
    return this.initializer(opts.name ?? (this.opts.tag ? `${this.opts.tag}/const` : 'const'), Tensor.from(dtype, dims, arr));
  }
}

/** A new empty model with the given opsets (default: ONNX opset 20, IR 10). */
export function createModel(opts: { opset?: number; irVersion?: number; opsets?: Record<string, number>; producer?: string } = {}): Model {
  const m = new Model();
  m.irVersion = opts.irVersion ?? 10;
  m.opsetImports.set('', opts.opset ?? 20);
  for (const [d, v] of Object.entries(opts.opsets ?? {})) m.opsetImports.set(d, v);
  m.producerName = opts.producer ?? 'ortfuse';
  m.graph.name = 'main';
  return m;
}
