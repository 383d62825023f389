/**
 * Helpers for writing portable ONNX function bodies with the GraphBuilder. Function bodies have no
 * initializers, so constants are Constant nodes; attributes of the calling node are read through
 * `ref_attr_name`; reductions are emitted in the form the model's opset expects (axes as an
 * attribute before opset 18, as an input from 18 on — ReduceSum from 13).
 */
import { fail } from '../errors.js';
import { DataType } from '../onnx/schema.js';
import { GraphBuilder, type Attrs as BuilderAttrs } from '../ir/builder.js';
import { Graph, Value, type Attr, type AttrType } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { tensorType, type Dim } from '../ir/types.js';

/** Lowest default-domain opset the bodies support (Shape start/end and CastLike need 15). */
export const MIN_BODY_OPSET = 15;

type ReduceOp = 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceLogSumExp';

/** A builder for one function body (or a Loop body inside it). */
export class Body {
  readonly b: GraphBuilder;
  constructor(readonly graph: Graph, readonly opset: number) {
    if (opset < MIN_BODY_OPSET) fail('unsupported', `fused-op bodies need ONNX opset >= ${MIN_BODY_OPSET}, the model imports ${opset}`);
    this.b = new GraphBuilder(graph);
  }

  get op() {
    return this.b.op;
  }

  /** A Constant node holding `values` (int64 by default for integers, else float32). */
  const(values: number | number[], dtype?: number, dims?: number[]): Value {
    const arr = Array.isArray(values) ? values : [values];
    const dt = dtype ?? (arr.every(Number.isInteger) ? DataType.INT64 : DataType.FLOAT);
    const shape = dims ?? (Array.isArray(values) ? [arr.length] : []);
    const data = dt === DataType.INT64 ? arr.map((v) => BigInt(v)) : arr;
    return this.op.Constant({ value: Tensor.from(dt, shape, data as number[]) });
  }

  /** A scalar Constant whose value is the calling node's attribute `attrName`. */
  attrConst(kind: 'int' | 'float' | 'string', attrName: string): Value {
    const type: AttrType = kind === 'int' ? 'INT' : kind === 'float' ? 'FLOAT' : 'STRING';
    const a: Attr = { name: `value_${kind}`, type, value: undefined, refAttrName: attrName };
    return this.op.Constant({ [`value_${kind}`]: a });
  }

  /** An attribute that refers to the calling node's attribute `attrName`. */
  attrRef(name: string, type: AttrType, attrName: string): Attr {
    return { name, type, value: undefined, refAttrName: attrName };
  }

  /** Reduce over constant `axes` (or an axes tensor when opset >= 18 / ReduceSum >= 13). */
  reduce(op: ReduceOp, x: Value, axes: number[] | Value, keepdims: boolean, extra: BuilderAttrs = {}): Value {
    const inputAxes = this.opset >= (op === 'ReduceSum' ? 13 : 18);
    if (inputAxes) {
      const ax = Array.isArray(axes) ? this.const(axes) : axes;
      return this.op.call(op, [x, ax], { keepdims: keepdims ? 1 : 0, ...extra })[0];
    }
    if (!Array.isArray(axes)) fail('unsupported', `${op} with runtime axes needs opset 18, the model imports ${this.opset}`);
    return this.op.call(op, [x], { axes, keepdims: keepdims ? 1 : 0, ...extra })[0];
  }

  /**
   * Bool scalar: string scalar `s` equals `literal`. Equal takes strings from opset 19; before it,
   * Concat the two and count the distinct values with Unique (1 means equal).
   */
  stringEquals(s: Value, literal: string): Value {
    const lit = this.op.Constant({ value_string: literal });
    if (this.opset >= 19) return this.op.Equal(s, lit);
    const one = this.const([1]);
    const both = this.op.Concat(this.op.Reshape(s, one), this.op.Reshape(lit, one), { axis: 0 });
    return this.op.Equal(this.op.Size(this.op.Unique(both)), this.const(1));
  }

  /**
   * Bool scalar: the calling node's string attribute `name` equals `literal`. When the value is
   * known when the body is built (`known`, from BodyOptions), a constant: string Equal has no
   * kernel in onnxruntime-web's WebGPU build, so webgpu bodies must not compare strings at run time.
   */
  attrStringIs(name: string, literal: string, known?: string): Value {
    if (known !== undefined) return this.op.Constant({ value: Tensor.from(DataType.BOOL, [], [known === literal ? 1 : 0]) });
    return this.stringEquals(this.attrConst('string', name), literal);
  }

  /** Dims `start..end` of `x`'s shape as a 1-D int64 tensor (Shape-15 start/end). */
  dims(x: Value, start: number, end?: number): Value {
    return this.op.Shape(x, end === undefined ? { start } : { start, end });
  }

  /** `x` reshaped to a scalar. */
  scalar(x: Value): Value {
    return this.op.Reshape(x, this.const([], DataType.INT64, [0]));
  }

  /** `x[start:end]` along `axis` (start/end 1-D int64 tensors). */
  slice(x: Value, start: Value, end: Value, axis: number): Value {
    return this.op.Slice(x, start, end, this.const([axis]));
  }

  /** A graph for a Loop body: inputs (iteration, condition, ...carried) typed as given. */
  loopBody(name: string, carried: { name: string; elem: number; shape?: Dim[] }[]): { body: Body; iter: Value; carried: Value[] } {
    const g = new Graph(this.graph.model);
    g.name = this.graph.model.freshName(name);
    const body = new Body(g, this.opset);
    const iter = body.b.input('iter', DataType.INT64, []);
    body.b.input('cond_in', DataType.BOOL, []);
    const vals = carried.map((c) => body.b.input(c.name, c.elem, c.shape));
    return { body, iter, carried: vals };
  }

  /** Emit a Loop running `body` `tripCount` times (condition passed through); returns its outputs. */
  loop(body: Body, tripCount: Value, initial: Value[], outputs: Value[]): Value[] {
    body.b.output(body.op.Identity(body.graph.inputs[1]));
    for (const o of outputs) body.b.output(o);
    const outs = this.op.call('Loop', [tripCount, null, ...initial], { body: body.graph }, { outputs: initial.length });
    body.graph.owner = outs[0].producer;
    return outs;
  }
}

/** A formal (untyped) input of a function body. */
export function formalInput(g: Graph, name: string): Value {
  const v = new Value(g, g.model.freshName(name));
  g.inputs.push(v);
  return v;
}

export { tensorType };
