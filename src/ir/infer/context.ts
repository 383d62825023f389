/**
 * What an inference rule sees: the node, its inputs' types, the known values of small integer
 * inputs (shape tensors), attributes (resolved against the calling node inside function bodies)
 * and a way to infer subgraphs. Rules are plain functions: `(node, ctx) => outputTypes`.
 */
import { DataType } from '../../onnx/schema.js';
import type { Attr, Graph, Node } from '../graph.js';
import type { Tensor } from '../tensor.js';
import type { Dim, TensorType, ValueType } from '../types.js';
import { dimEq } from './dims.js';

/**
 * The value of a small integer tensor known at inference time (from an initializer, a Constant
 * node, or propagated through Shape/Gather/Concat/... chains): its tensor shape (`[]` for a
 * scalar, `[n]` for a vector) and its elements as dims (numbers, symbols, or null if unknown).
 */
export interface KnownValue {
  shape: number[];
  values: Dim[];
}

/** Services a rule can use. Every accessor returns undefined for an absent or unknown input. */
export interface InferContext {
  /** Opset version of the node's domain (0 if not imported). */
  readonly opset: number;
  /** Type of input `i` when it is a tensor type. */
  type(i: number): TensorType | undefined;
  /** Element type of input `i`. */
  elem(i: number): number | undefined;
  /** Shape of input `i` (undefined when the rank is unknown). */
  shape(i: number): Dim[] | undefined;
  /** True if input `i` is present (not omitted with an empty name). */
  has(i: number): boolean;
  /** Known value of input `i` (small integer tensors only). */
  value(i: number): KnownValue | undefined;
  /** Known value of input `i` when every element is a concrete number. */
  ints(i: number): number[] | undefined;
  /** Attribute accessors; inside a function body they resolve `ref_attr_name` against the caller. */
  attr(name: string): Attr | undefined;
  attrInt(name: string): number | undefined;
  attrInts(name: string): number[] | undefined;
  attrFloat(name: string): number | undefined;
  attrString(name: string): string | undefined;
  attrTensor(name: string): Tensor | undefined;
  attrGraph(name: string): Graph | undefined;
  /**
   * Infer a subgraph (Loop/If body) whose formal inputs are refined with `inputTypes`; returns the
   * types of its outputs. With `tentative`, every type, known value and report entry it produced
   * is undone afterwards (to find a fixed point of loop-carried types first).
   */
  inferSubgraph(g: Graph, inputTypes: (ValueType | undefined)[], opts?: { tentative?: boolean }): (ValueType | undefined)[];
}

/**
 * A shape-inference rule: the types of the node's outputs, by position. `undefined` entries (or a
 * shorter array) leave those outputs as they are. A rule may throw; the driver then leaves the
 * node's outputs untouched.
 */
export type InferRule = (node: Node, ctx: InferContext) => (ValueType | undefined)[];

/** A tensor type. */
export function tt(elemType: number, shape?: Dim[]): TensorType {
  return { kind: 'tensor', elemType, shape };
}

/** Unknown dims of the given rank. */
export function unknownDims(rank: number): Dim[] {
  return Array.from({ length: rank }, () => null);
}

/** Normalize a possibly negative axis for a tensor of `rank`; throws when out of range. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting of two dims: 1 yields to the other; a size > 1 wins; else equal or unknown. */
export function broadcastDim(a: Dim, b: Dim): Dim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (dimEq(a, b)) return a;
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`cannot broadcast ${a} with ${b}`);
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return null;
}

/** Numpy broadcasting of shapes; undefined if any rank is unknown. */
export function broadcastShapes(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(0, ...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const j = s!.length - rank + i;
      if (j >= 0) d = broadcastDim(d, s![j]);
    }
    out.push(d);
  }
  return out;
}

/** The dim known more precisely of two that must be equal (number over symbol over null). */
export function unifyDim(a: Dim, b: Dim): Dim {
  if (a === null) return b;
  if (b === null) return a;
  if (typeof b === 'number' && typeof a !== 'number') return b;
  return a;
}

/** Integer element types whose small tensors are tracked as shape values. */
export function isIntType(t: number | undefined): boolean {
  return t === DataType.INT64 || t === DataType.INT32 || t === DataType.INT16 || t === DataType.INT8 ||
    t === DataType.UINT64 || t === DataType.UINT32 || t === DataType.UINT16 || t === DataType.UINT8;
}
