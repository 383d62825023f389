/** Value types in the IR: tensors with symbolic shapes, or an opaque proto for other kinds. */
import { dataTypeName } from '../onnx/schema.js';

/** One dimension: a size, a symbolic name ('batch'), or unknown (null). */
export type Dim = number | string | null;

export interface TensorType {
  kind: 'tensor';
  elemType: number;
  /** undefined = rank unknown. */
  shape?: Dim[];
}

/** Sequence, map, optional, sparse or opaque types, kept as the decoded TypeProto. */
export interface OtherType {
  kind: 'other';
  proto: any;
}

export type ValueType = TensorType | OtherType;

export function tensorType(elemType: number, shape?: Dim[]): TensorType {
  return { kind: 'tensor', elemType, shape };
}

export function formatShape(shape: Dim[] | undefined): string {
  if (!shape) return '[?]';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

export function formatType(t: ValueType | undefined): string {
  if (!t) return '?';
  if (t.kind === 'other') return 'non-tensor';
  return `${dataTypeName(t.elemType)}${formatShape(t.shape)}`;
}

export function sameType(a: ValueType | undefined, b: ValueType | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  if (a.kind === 'other') return a.proto === (b as OtherType).proto;
  const bt = b as TensorType;
  if (a.elemType !== bt.elemType) return false;
  if (!a.shape || !bt.shape) return a.shape === bt.shape;
  return a.shape.length === bt.shape.length && a.shape.every((d, i) => d === bt.shape![i]);
}
