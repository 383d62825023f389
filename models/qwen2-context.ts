/**
 * What the Qwen2 graph builders share: the op builder, the config, parameter lookup, constants
 * (deduplicated initializers, as the exporter's optimizer leaves them) and per-graph values that
 * the exporter computes once at their first use (shape tensors, RoPE tables).
 */
import { fail } from '../src/errors.js';
import { DataType } from '../src/onnx/schema.js';
import type { GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Qwen2Config } from './config.js';

/** INT64_MAX, the exporter's "to the end" Slice bound. */
export const INT64_MAX = 9223372036854775807n;

/** Builder state shared by models/qwen2*.ts. */
export class BuildContext {
  private consts = new Map<string, Value>();
  private cache = new Map<string, Value>();

  constructor(readonly b: GraphBuilder, readonly config: Qwen2Config, private readonly params: Map<string, Value>) {}

  get op() {
    return this.b.op;
  }

  /** The parameter initializer of that name. */
  w(name: string): Value {
    return this.params.get(name) ?? fail('invalid', `internal: no parameter '${name}'`);
  }

  /** A 1-D int64 constant. */
  ints(values: (number | bigint)[]): Value {
    return this.constant(DataType.INT64, [values.length], values.map((v) => BigInt(v)));
  }

  /** A scalar int64 constant. */
  int(v: number): Value {
    return this.constant(DataType.INT64, [], [BigInt(v)]);
  }

  /** A scalar float32 constant. */
  float(v: number): Value {
    return this.constant(DataType.FLOAT, [], [v]);
  }

  /** A scalar bool constant. */
  bool(v: boolean): Value {
    return this.constant(DataType.BOOL, [], [v ? 1 : 0]);
  }

  /** A float32 constant of any shape. */
  floats(dims: number[], values: number[]): Value {
    return this.constant(DataType.FLOAT, dims, values);
  }

  private constant(dtype: number, dims: number[], values: (number | bigint)[]): Value {
    // Float32 keys use the rounded value, so 1e-6 and its float32 are one constant.
    const norm = dtype === DataType.FLOAT ? values.map((v) => Math.fround(Number(v))) : values;
    const key = `${dtype}|${dims}|${norm.join(',')}`;
    let v = this.consts.get(key);
    if (!v) {
      v = this.b.initializer(`val_${this.consts.size}`, Tensor.from(dtype, dims, values as number[] | bigint[]));
      this.consts.set(key, v);
    }
    return v;
  }

  /** A value computed once, where it is first needed (the exporter's CSE keeps the first). */
  once(key: string, make: () => Value): Value {
    let v = this.cache.get(key);
    if (!v) {
      v = make();
      this.cache.set(key, v);
    }
    return v;
  }

  /** Look up a value stored with `set` (e.g. the batch and seq shape tensors). */
  get(key: string): Value {
    return this.cache.get(key) ?? fail('invalid', `internal: builder value '${key}' not set`);
  }

  set(key: string, v: Value): Value {
    this.cache.set(key, v);
    return v;
  }
}
