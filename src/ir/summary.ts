/** What `ortfuse inspect` reports about a model, as data (for --json) and as text. */
import { dataTypeName } from '../onnx/schema.js';
import type { Model, Value } from './graph.js';
import type { Dim } from './types.js';
import { modelGraphs } from './walk.js';
import { formatShape } from './types.js';

export interface ValueSummary {
  name: string;
  /** `FLOAT[batch,seq,896]`, `seq(FLOAT[?])`, ... */
  type: string;
  elemType?: string;
  /** Dimensions (numbers, symbolic names, null = unknown); undefined when the rank is unknown. */
  shape?: Dim[];
}

export interface OpCount {
  domain: string;
  op: string;
  count: number;
}

export interface ModelSummary {
  irVersion: number;
  producer: { name?: string; version?: string };
  opsets: Record<string, number>;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** Nodes of the main graph and its subgraphs (not function bodies). */
  nodes: number;
  ops: OpCount[];
  parameters: { tensors: number; elements: number; bytes: number; externalBytes: number; byType: Record<string, number> };
  functions: { domain: string; name: string; nodes: number; inputs: string[]; outputs: string[] }[];
}

function describeType(tp: any): string {
  if (!tp) return '?';
  if (tp.tensor_type) {
    const t = tp.tensor_type;
    const shape = t.shape ? (t.shape.dim ?? []).map((d: any) => (d.dim_value != null ? Number(d.dim_value) : d.dim_param || null)) : undefined;
    return `${dataTypeName(t.elem_type ?? 0)}${formatShape(shape)}`;
  }
  if (tp.sequence_type) return `seq(${describeType(tp.sequence_type.elem_type)})`;
  if (tp.optional_type) return `optional(${describeType(tp.optional_type.elem_type)})`;
  if (tp.map_type) return `map(${dataTypeName(tp.map_type.key_type ?? 0)},${describeType(tp.map_type.value_type)})`;
  if (tp.sparse_tensor_type) return `sparse(${dataTypeName(tp.sparse_tensor_type.elem_type ?? 0)})`;
  return 'opaque';
}

function valueSummary(v: Value): ValueSummary {
  const t = v.type;
  if (t?.kind === 'tensor')
    return { name: v.name, type: `${dataTypeName(t.elemType)}${formatShape(t.shape)}`, elemType: dataTypeName(t.elemType), shape: t.shape };
  return { name: v.name, type: t ? describeType(t.proto) : '?' };
}

/** Summarize a model (external data are not read). */
export function summarize(model: Model): ModelSummary {
  const ops = new Map<string, OpCount>();
  const params = { tensors: 0, elements: 0, bytes: 0, externalBytes: 0, byType: {} as Record<string, number> };
  let nodes = 0;
  for (const g of modelGraphs(model)) {
    for (const n of g.nodes) {
      nodes++;
      const domain = n.domain === 'ai.onnx' ? '' : n.domain;
      const key = `${domain}::${n.opType}`;
      const c = ops.get(key) ?? { domain, op: n.opType, count: 0 };
      c.count++;
      ops.set(key, c);
    }
    for (const v of g.initializers) {
      const t = v.initializer!;
      params.tensors++;
      params.elements += t.size;
      params.bytes += t.byteLength;
      if (t.external) params.externalBytes += t.byteLength;
      const ty = dataTypeName(t.dtype);
      params.byType[ty] = (params.byType[ty] ?? 0) + t.size;
    }
  }
  const inits = new Set(model.graph.initializers);
  return {
    irVersion: model.irVersion,
    producer: { name: model.producerName, version: model.producerVersion },
    opsets: Object.fromEntries([...model.opsetImports].map(([d, v]) => [d || 'ai.onnx', v])),
    inputs: model.graph.inputs.filter((v) => !inits.has(v)).map(valueSummary),
    outputs: model.graph.outputs.map(valueSummary),
    nodes,
    ops: [...ops.values()].sort((a, b) => b.count - a.count || a.domain.localeCompare(b.domain) || a.op.localeCompare(b.op)),
    parameters: params,
    functions: model.functions.map((f) => ({
      domain: f.domain,
      name: f.name,
      nodes: f.body.nodes.length,
      inputs: f.body.inputs.map((v) => v.name),
      outputs: f.body.outputs.map((v) => v.name),
    })),
  };
}

/** Bytes as `1.84 GiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(2)} ${units[i]}`;
}

const num = (n: number) => n.toLocaleString('en-US');

/** The summary as text. */
export function formatSummary(s: ModelSummary, file: string): string {
  const lines: string[] = [file];
  const producer = [s.producer.name, s.producer.version].filter(Boolean).join(' ') || '(none)';
  const opsets = Object.entries(s.opsets).map(([d, v]) => `${d} ${v}`).join(', ') || '(none)';
  lines.push(`  IR version ${s.irVersion} · producer ${producer} · opsets: ${opsets}`);
  const width = Math.max(4, ...[...s.inputs, ...s.outputs].map((v) => v.name.length));
  for (const [title, vs] of [['inputs', s.inputs], ['outputs', s.outputs]] as const) {
    lines.push(`  ${title} (${vs.length}):`);
    for (const v of vs) lines.push(`    ${v.name.padEnd(width)}  ${v.type}`);
  }
  const p = s.parameters;
  const ext = p.externalBytes ? `, ${formatBytes(p.externalBytes)} in external data` : '';
  const types = Object.entries(p.byType).map(([t, n]) => `${t} ${num(n)}`).join(', ');
  lines.push(`  parameters: ${num(p.elements)} in ${num(p.tensors)} initializers, ${formatBytes(p.bytes)}${ext}${types ? ` (${types})` : ''}`);
  lines.push(`  nodes: ${num(s.nodes)}`);
  const cw = Math.max(5, ...s.ops.map((o) => String(o.count).length));
  for (const o of s.ops) lines.push(`    ${String(o.count).padStart(cw)}  ${o.domain ? `${o.domain}::` : ''}${o.op}`);
  lines.push(`  functions (${s.functions.length}):`);
  for (const f of s.functions)
    lines.push(`    ${f.domain}.${f.name}(${f.inputs.join(', ')}) -> (${f.outputs.join(', ')})  ${f.nodes} nodes`);
  return `${lines.join('\n')}\n`;
}
