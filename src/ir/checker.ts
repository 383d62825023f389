/**
 * The model checker: topological order, every input defined, use lists consistent, opset
 * imports present for every op domain, known domains, consistent element types for ops whose
 * inputs must agree. Runs after every pass in tests.
 */
import { OrtfuseError } from '../errors.js';
import { dataTypeName } from '../onnx/schema.js';
import { Graph, isWithin, Model, type Value } from './graph.js';
import { nodeDependencies } from './toposort.js';

/** Domains ONNX Runtime knows besides model-local functions. */
export const KNOWN_DOMAINS = new Set(['', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft', 'ai.onnx.preview.training', 'ai.ortfuse']);

/** Ops whose (first two / all) inputs must share an element type. */
const SAME_TYPE_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'MatMul', 'Equal', 'Less', 'Greater', 'Max', 'Min', 'Sum', 'Concat', 'Gemm']);

export interface Problem {
  code: 'invalid' | 'unsupported';
  message: string;
}

export function checkModel(model: Model): Problem[] {
  const problems: Problem[] = [];
  const fnDomains = new Set(model.functions.map((f) => f.domain));
  checkGraph(model.graph, model.opsetImports, fnDomains, problems, 'graph');
  for (const f of model.functions)
    checkGraph(f.body, f.opsetImports, fnDomains, problems, `function ${f.domain}.${f.name}`);
  return problems;
}

/** Throw the first problem as a one-line error. */
export function check(model: Model, source = 'model'): void {
  const p = checkModel(model)[0];
  if (p) throw new OrtfuseError(p.code, `${source}: ${p.message}`);
}

function checkGraph(g: Graph, opsets: Map<string, number>, fnDomains: Set<string>, out: Problem[], where: string): void {
  const seen = new Set<Value>([...g.inputs, ...g.initializers]);
  const visible = (v: Value): boolean => {
    if (seen.has(v)) return true;
    if (v.graph === g) return false;
    // Outer scope: defined in an enclosing graph (checked when that graph was walked).
    return g.owner !== undefined && isWithin(g, v.graph);
  };
  for (const n of g.nodes) {
    const dom = n.domain === 'ai.onnx' ? '' : n.domain;
    if (!KNOWN_DOMAINS.has(dom) && !fnDomains.has(dom))
      out.push({ code: 'unsupported', message: `${where}: ${n.label} uses unknown op domain '${n.domain}'` });
    else if (!opsets.has(dom) && !(dom === '' && opsets.has('ai.onnx')))
      out.push({ code: 'invalid', message: `${where}: ${n.label} uses domain '${n.domain || 'ai.onnx'}' that the model does not import (opset_import)` });
    n.inputs.forEach((v, i) => {
      if (!v) return;
      if (!visible(v))
        out.push({ code: 'invalid', message: `${where}: ${n.label} input ${i} '${v.name}' is not defined before it (missing producer or cycle)` });
      if (!v.uses().some((u) => u.node === n && u.index === i))
        out.push({ code: 'invalid', message: `${where}: internal: use list of '${v.name}' misses ${n.label}` });
    });
    for (const v of nodeDependencies(n)) if (!n.inputs.includes(v) && !visible(v) && v.graph === g)
      out.push({ code: 'invalid', message: `${where}: a subgraph of ${n.label} reads '${v.name}' before it is defined` });
    if (SAME_TYPE_OPS.has(n.opType) && dom === '') {
      const types = n.inputs.slice(0, n.opType === 'Gemm' ? 2 : undefined).map((v) => v?.tensorType?.elemType).filter((t) => t);
      if (new Set(types).size > 1)
        out.push({ code: 'invalid', message: `${where}: ${n.label} mixes element types ${[...new Set(types)].map((t) => dataTypeName(t!)).join(' and ')}` });
    }
    for (const o of n.outputs) {
      if (o.producer !== n) out.push({ code: 'invalid', message: `${where}: internal: '${o.name}' does not point back to ${n.label}` });
      seen.add(o);
    }
    for (const sg of n.subgraphs()) checkGraph(sg, opsets, fnDomains, out, `${where} > ${n.label}`);
  }
  for (const v of g.outputs)
    if (!seen.has(v) && !(g.owner && isWithin(g, v.graph) && v.graph !== g))
      out.push({ code: 'invalid', message: `${where}: output '${v.name}' is not produced by any node` });
}

