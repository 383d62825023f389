/**
 * Shared types of the fused ops (domain `ai.ortfuse`, version 1): the op signature, the body
 * builder contract, and helpers that read a node's attributes and input types with one-line errors
 * naming the op, the node and the offending shape.
 */
import { fail } from '../errors.js';
import { dataTypeName } from '../onnx/schema.js';
import type { Node, Value } from '../ir/graph.js';
import { formatShape, type Dim, type TensorType } from '../ir/types.js';
import type { Body } from './body.js';

export const ORTFUSE_DOMAIN = 'ai.ortfuse';
export const ORTFUSE_VERSION = 1;

/** Which runtime a portable body is written for (docs/runtime.md: 'webgpu' bodies avoid Loop and the ops WebGPU EPs run on the CPU). */
export type Target = 'cpu' | 'webgpu';

export type AttrKind = 'INT' | 'FLOAT' | 'STRING';
export type AttrJs = number | string;

export interface AttrSpec {
  name: string;
  type: AttrKind;
  default: AttrJs;
  /** Allowed values of a STRING attribute. */
  values?: readonly string[];
  doc: string;
}

export interface IoSpec {
  name: string;
  /** Allowed element types (DataType values); empty = any. */
  types: readonly number[];
  optional?: boolean;
  doc: string;
}

/** What an inference rule needs from its caller; src/ir/infer's InferContext satisfies it. */
export interface InferCtxLike {
  type(i: number): TensorType | undefined;
  attrInt(name: string): number | undefined;
  attrFloat(name: string): number | undefined;
  attrString(name: string): string | undefined;
}

export type Attrs = Record<string, AttrJs>;

export interface FusedOpSchema {
  domain: typeof ORTFUSE_DOMAIN;
  name: string;
  version: typeof ORTFUSE_VERSION;
  inputs: readonly IoSpec[];
  outputs: readonly IoSpec[];
  attributes: readonly AttrSpec[];
  /**
   * Output types from input types and resolved attributes; throws OrtfuseError('invalid') naming
   * `where` when shapes or types disagree. Unknown inputs give unknown (undefined) parts.
   */
  check(types: (TensorType | undefined)[], attrs: Attrs, where: string): TensorType[];
}

/** Options for building a body that cannot be read from the nodes at run time. */
export interface BodyOptions {
  /** LinearGrad: the `trans_b` every caller uses (0 or 1; absent = 1), or 'node' when callers differ (custom-ops/linear/function.ts). */
  transB?: number | 'node';
  /** Linear-CE on webgpu: the number of unrolled chunks. */
  numChunks?: number;
  /** Linear-CE: the `reduction` every caller uses, settled when the body is built (see Body.attrStringIs). */
  reduction?: string;
  /**
   * The `precision` every caller uses ('fp32' or 'f16': GEMM operands rounded to float16), or
   * 'node' when callers differ (compared at run time); absent = 'fp32' (custom-ops/precision.ts).
   */
  precision?: string;
  /** Linear-CE with grad: the callers pass the optional input grad_scale (they must agree; absent = none does). */
  gradScale?: boolean;
}

/** A fused op: its schema and a builder of its portable ONNX function body. */
export interface FusedOp {
  schema: FusedOpSchema;
  /** Build the body from the formal inputs (absent optional inputs are still passed: see Body). */
  buildBody(b: Body, inputs: Value[], target: Target, opts: BodyOptions): Value[];
  /** Body options derived from the model's nodes of this op (e.g. num_chunks); optional. */
  bodyOptions?(nodes: Node[], target: Target): BodyOptions;
  /**
   * How many of the schema's inputs the body built with `opts` takes as formal inputs (trailing
   * optional inputs no caller passes left out, so the function is what it was before they
   * existed); default: all.
   */
  formalInputs?(opts: BodyOptions): number;
}

/** Attribute values of `node` with schema defaults filled in; wrong types fail clearly. */
export function nodeAttrs(schema: FusedOpSchema, node: Node): Attrs {
  const out: Attrs = {};
  for (const s of schema.attributes) {
    const a = node.attr(s.name);
    if (!a) out[s.name] = s.default;
    else if (a.type !== s.type) fail('invalid', `${node.label}: attribute '${s.name}' is ${a.type}, expected ${s.type}`);
    else out[s.name] = s.type === 'INT' ? node.attrInt(s.name) : s.type === 'FLOAT' ? node.attrFloat(s.name) : node.attrString(s.name);
  }
  for (const name of node.attributes.keys())
    if (!schema.attributes.some((s) => s.name === name))
      fail('invalid', `${node.label}: unknown attribute '${name}' (${schema.name} has ${schema.attributes.map((s) => s.name).join(', ')})`);
  return out;
}

/** Attribute values from an inference context, defaults filled in. */
export function ctxAttrs(schema: FusedOpSchema, ctx: InferCtxLike): Attrs {
  const out: Attrs = {};
  for (const s of schema.attributes) {
    const v = s.type === 'INT' ? ctx.attrInt(s.name) : s.type === 'FLOAT' ? ctx.attrFloat(s.name) : ctx.attrString(s.name);
    out[s.name] = v ?? s.default;
  }
  return out;
}

/** Validate a node of this op: input count, element types, ranks, dims and attribute values. */
export function validateNode(schema: FusedOpSchema, node: Node): TensorType[] {
  if (node.domain !== schema.domain || node.opType !== schema.name)
    fail('invalid', `${node.label} is not ${schema.domain}::${schema.name}`);
  const required = schema.inputs.filter((i) => !i.optional).length;
  const present = node.inputs.length;
  if (present < required || present > schema.inputs.length)
    fail('invalid', `${node.label}: expected ${required === schema.inputs.length ? required : `${required}..${schema.inputs.length}`} inputs, got ${present}`);
  schema.inputs.forEach((spec, i) => {
    if (!spec.optional && !node.inputs[i]) fail('invalid', `${node.label}: required input '${spec.name}' is missing`);
  });
  if (node.outputs.length !== schema.outputs.length)
    fail('invalid', `${node.label}: expected ${schema.outputs.length} output(s), got ${node.outputs.length}`);
  return schema.check(node.inputs.map((v) => v?.tensorType), nodeAttrs(schema, node), node.label);
}

/** An inference rule `(node, ctx) => outputTypes` for the shape-inference table. */
export function inferRule(schema: FusedOpSchema) {
  return (node: Node, ctx: InferCtxLike): TensorType[] =>
    schema.check(schema.inputs.map((_, i) => ctx.type(i)), ctxAttrs(schema, ctx), node.label);
}

/** The inference rules of `ops` for inferShapes' `rules`, keyed `domain::OpType`. */
export function inferRules(ops: readonly FusedOp[]): Record<string, ReturnType<typeof inferRule>> {
  return Object.fromEntries(ops.map((o) => [`${o.schema.domain}::${o.schema.name}`, inferRule(o.schema)]));
}

// ---- helpers for `check` implementations ----

/** Fail with `where: message`. */
export function invalid(where: string, message: string): never {
  return fail('invalid', `${where}: ${message}`);
}

/** Check element type and rank of an input; returns its shape (undefined if unknown). */
export function expectInput(where: string, spec: IoSpec, t: TensorType | undefined, rank?: number): Dim[] | undefined {
  if (!t) return undefined;
  if (spec.types.length && t.elemType && !spec.types.includes(t.elemType))
    invalid(where, `input '${spec.name}' has element type ${dataTypeName(t.elemType)}, expected one of ${spec.types.map(dataTypeName).join(', ')}`);
  if (rank !== undefined && t.shape && t.shape.length !== rank)
    invalid(where, `input '${spec.name}' has shape ${formatShape(t.shape)}, expected rank ${rank}`);
  return t.shape;
}

/** Two dims that must be equal: the better-known one, or a clear error. */
export function sameDim(where: string, what: string, a: Dim | undefined, b: Dim | undefined): Dim {
  const x = a ?? null;
  const y = b ?? null;
  if (typeof x === 'number' && typeof y === 'number' && x !== y) invalid(where, `${what}: ${x} vs ${y}`);
  if (typeof x === 'string' && typeof y === 'string' && x !== y) return x;
  return x ?? y;
}

/** Two inputs that must share an element type. */
export function sameElem(where: string, names: [string, string], a: TensorType | undefined, b: TensorType | undefined): number {
  if (a?.elemType && b?.elemType && a.elemType !== b.elemType)
    invalid(where, `inputs '${names[0]}' (${dataTypeName(a.elemType)}) and '${names[1]}' (${dataTypeName(b.elemType)}) must have the same element type`);
  return a?.elemType || b?.elemType || 0;
}

/** Check a STRING attribute against its allowed values. */
export function checkAttrValues(where: string, schema: FusedOpSchema, attrs: Attrs): void {
  for (const s of schema.attributes)
    if (s.values && !s.values.includes(String(attrs[s.name])))
      invalid(where, `attribute ${s.name}='${attrs[s.name]}' is not one of ${s.values.map((v) => `'${v}'`).join(', ')}`);
}
