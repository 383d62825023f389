/**
 * The GradContext handed to gradient rules: guarded access to saved forward values, runtime and
 * static shapes, typed constants and the broadcast-reduction helper.
 */
import { fail } from '../errors.js';
import { DataType } from '../onnx/schema.js';
import type { GraphBuilder, Ops } from '../ir/builder.js';
import type { Node, Value } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim } from '../ir/types.js';
import { sumToShape } from './sum-to-shape.js';
import type { GradContext, GradRule } from './types.js';

/** What the backward engine provides to every rule context. */
export interface BackwardState {
  readonly b: GraphBuilder;
  readonly opset: number;
  /** The summed gradient of a forward value, if any flows. */
  gradOf(v: Value): Value | undefined;
  /** Memoized Shape of a forward value (placed in the forward pass). */
  shapeOf(v: Value): Value;
  elemType(v: Value): number | undefined;
  constValues(v: Value): number[] | undefined;
  scalar(value: number, elemType: number): Value;
  ints(values: number[] | number): Value;
}

export class RuleContext implements GradContext {
  readonly op: Ops<Value>;
  readonly opset: number;

  constructor(readonly node: Node, private readonly rule: GradRule, private readonly s: BackwardState) {
    this.op = s.b.op;
    this.opset = s.opset;
  }

  unsupported(why: string): never {
    return fail('unsupported', `autodiff: ${this.node.label}: ${why}`);
  }

  private input(i: number): Value {
    return this.node.inputs[i] ?? this.unsupported(`input ${i} is missing`);
  }

  x(i: number): Value {
    if (!this.rule.save.inputs?.includes(i)) fail('invalid', `autodiff: the rule of ${this.node.opType} reads input ${i}, which it does not declare in save.inputs`);
    return this.input(i);
  }

  y(i: number): Value {
    if (!this.rule.save.outputs?.includes(i)) fail('invalid', `autodiff: the rule of ${this.node.opType} reads output ${i}, which it does not declare in save.outputs`);
    return this.node.outputs[i];
  }

  hasDy(i: number): boolean {
    const o = this.node.outputs[i];
    return o !== undefined && this.s.gradOf(o) !== undefined;
  }

  dyConst(i = 0): number[] | undefined {
    const g = this.s.gradOf(this.node.outputs[i]);
    return g ? this.s.constValues(g) : undefined;
  }

  dy(i = 0): Value {
    const o = this.node.outputs[i];
    const g = this.s.gradOf(o);
    if (g) return g;
    // No gradient reaches this output: zeros of its shape.
    const zero = this.s.scalar(0, this.elemTypeY(i));
    return this.op.Expand(zero, this.shapeY(i));
  }

  shapeX(i: number): Value {
    return this.s.shapeOf(this.input(i));
  }

  shapeY(i: number): Value {
    return this.s.shapeOf(this.node.outputs[i]);
  }

  staticShapeX(i: number): Dim[] | undefined {
    return staticShape(this.input(i));
  }

  rankX(i: number): number {
    return staticShape(this.input(i))?.length ?? this.unsupported(`the rank of input ${i} '${this.input(i).name}' is unknown (run shape inference first)`);
  }

  rankY(i: number): number {
    const o = this.node.outputs[i];
    return o.tensorType?.shape?.length ?? this.unsupported(`the rank of output ${i} '${o.name}' is unknown (run shape inference first)`);
  }

  elemTypeX(i: number): number {
    return this.s.elemType(this.input(i)) ?? this.unsupported(`the element type of input ${i} is unknown`);
  }

  elemTypeY(i: number): number {
    return this.s.elemType(this.node.outputs[i]) ?? this.unsupported(`the element type of output ${i} is unknown`);
  }

  constX(i: number): number[] | undefined {
    const v = this.node.inputs[i];
    return v ? this.s.constValues(v) : undefined;
  }

  scalar(value: number, elemType: number): Value {
    return this.s.scalar(value, elemType);
  }

  ints(values: number[] | number): Value {
    return this.s.ints(values);
  }

  sumToX(grad: Value, i: number, gShape?: Dim[]): Value {
    const x = this.input(i);
    const gs = gShape ?? this.node.outputs[0].tensorType?.shape;
    return sumToShape(this, grad, gs, staticShape(x), () => this.shapeX(i));
  }

  reduceSum(v: Value, axes: number[] | Value, keepdims: boolean): Value {
    if (this.opset < 13) {
      if (!Array.isArray(axes)) this.unsupported('runtime reduction axes need opset 13 or later');
      return this.op.ReduceSum(v, { axes, keepdims: keepdims ? 1 : 0 });
    }
    const ax = Array.isArray(axes) ? this.ints(axes) : axes;
    return this.op.ReduceSum(v, ax, { keepdims: keepdims ? 1 : 0 });
  }

  unsqueeze(v: Value, axes: number[] | Value): Value {
    if (this.opset < 13) {
      if (!Array.isArray(axes)) this.unsupported('runtime Unsqueeze axes need opset 13 or later');
      return this.op.Unsqueeze(v, { axes });
    }
    return this.op.Unsqueeze(v, Array.isArray(axes) ? this.ints(axes) : axes);
  }

  zerosLikeX(i: number): Value {
    return this.op.Expand(this.scalar(0, this.elemTypeX(i)), this.shapeX(i));
  }
}

/** The static shape of a value: its type's, or an initializer's dims. */
export function staticShape(v: Value): Dim[] | undefined {
  return v.tensorType?.shape ?? v.initializer?.dims;
}

/** A 0-D constant tensor of `elemType` holding `value`. */
export function scalarTensor(value: number, elemType: number): Tensor {
  if (elemType === DataType.FLOAT16 || elemType === DataType.BFLOAT16) {
    const bits = elemType === DataType.FLOAT16 ? toHalf(value) : toBfloat16(value);
    return Tensor.from(elemType, [], [bits]);
  }
  return Tensor.from(elemType, [], [value]);
}

function toBfloat16(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  return (u + 0x7fff + ((u >> 16) & 1)) >>> 16;
}

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const m = (mant | 0x800000) >> (1 - exp);
    return sign | ((m + 0x1000) >> 13);
  }
  return sign | ((exp << 10) + ((mant + 0x1000) >> 13));
}
