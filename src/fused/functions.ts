/**
 * Attach fused ops' portable bodies to a model as model-local functions (ModelProto.functions), so
 * any ONNX Runtime inlines them where no kernel of ours runs. The function imports exactly the
 * model's opsets (ORT rejects a function whose opset imports differ from the model's).
 */
import { fail } from '../errors.js';
import { Graph, type Model, type ModelFunction, type Node } from '../ir/graph.js';
import { toLong } from '../ir/long.js';
import { makeAttr } from '../ir/builder.js';
import { Body, formalInput } from './body.js';
import { ORTFUSE_DOMAIN, ORTFUSE_VERSION, type AttrSpec, type BodyOptions, type FusedOp, type Target } from './types.js';

const ATTR_TYPE_IDS = { FLOAT: 1, INT: 2, STRING: 3 } as const;

/** The AttributeProto giving an attribute's default (FunctionProto.attribute_proto). */
function defaultAttrProto(s: AttrSpec): any {
  const p: any = { name: s.name, type: ATTR_TYPE_IDS[s.type] };
  if (s.type === 'INT') p.i = toLong(BigInt(s.default));
  else if (s.type === 'FLOAT') p.f = Number(s.default);
  else p.s = new TextEncoder().encode(String(s.default));
  return p;
}

/** The op called `name` in `ops` (a clear error naming the known ones otherwise). */
export function findOp<T extends FusedOp>(ops: readonly T[], name: string): T {
  return ops.find((o) => o.schema.name === name) ?? fail('usage', `unknown fused op '${name}' (known: ${ops.map((o) => o.schema.name).join(', ')})`);
}

/** Nodes of the main graph (and its subgraphs) that call `op`. */
function callers(model: Model, op: FusedOp): Node[] {
  return [...model.graph.allNodes()].filter((n) => n.domain === ORTFUSE_DOMAIN && n.opType === op.schema.name);
}

/** The tag written in the function's doc_string: target, options and opsets it was built for. */
function stamp(target: Target, opts: BodyOptions, model: Model): string {
  const opsets = [...model.opsetImports].sort().map(([d, v]) => `${d || 'ai.onnx'}:${v}`).join(',');
  return `ortfuse portable body; target=${target}; options=${JSON.stringify(opts)}; opsets=${opsets}`;
}

/**
 * Ensure `model.functions` holds the portable body of `op` for `target`, and that the model imports
 * `ai.ortfuse` version 1. Idempotent: a body already built for the same target, options and
 * opsets is kept (and returned); one built for another target or opsets is replaced.
 * `opts` defaults to what the op derives from its nodes (e.g. num_chunks for linear-CE on webgpu).
 */
export function ensureFunction(model: Model, fop: FusedOp, target: Target, opts?: BodyOptions): ModelFunction {
  const s = fop.schema;
  const have = model.opsetImports.get(ORTFUSE_DOMAIN);
  if (have !== undefined && have !== ORTFUSE_VERSION)
    fail('unsupported', `the model imports ${ORTFUSE_DOMAIN} version ${have}; ortfuse writes version ${ORTFUSE_VERSION}`);
  model.opsetImports.set(ORTFUSE_DOMAIN, ORTFUSE_VERSION);
  if (model.irVersion < 9) fillDefaults(model, fop);
  const options = opts ?? fop.bodyOptions?.(callers(model, fop), target) ?? {};
  const tag = stamp(target, options, model);
  const existing = model.findFunction(s.domain, s.name);
  if (existing?.extra.doc_string === tag) return existing;

  const opset = model.opset('') ?? fail('invalid', 'the model does not import the default ONNX domain');
  const g = new Graph(model);
  g.name = s.name;
  const inputs = s.inputs.slice(0, fop.formalInputs?.(options) ?? s.inputs.length).map((i) => formalInput(g, `${s.name}.${i.name}`));
  const outputs = fop.buildBody(new Body(g, opset), inputs, target, options);
  g.outputs.push(...outputs);
  const fn: ModelFunction = {
    domain: s.domain,
    name: s.name,
    attributeNames: model.irVersion >= 9 ? [] : s.attributes.map((a) => a.name),
    attributeProtos: model.irVersion >= 9 ? s.attributes.map(defaultAttrProto) : [],
    opsetImports: new Map(model.opsetImports),
    body: g,
    extra: { doc_string: tag },
  };
  if (existing) model.functions[model.functions.indexOf(existing)] = fn;
  else model.functions.push(fn);
  return fn;
}

/** IR < 9 has no attribute defaults in functions: write every attribute on the calling nodes. */
function fillDefaults(model: Model, op: FusedOp): void {
  for (const n of callers(model, op))
    for (const a of op.schema.attributes)
      if (!n.attr(a.name)) n.setAttr(makeAttr(a.name, a.type === 'FLOAT' ? { float: Number(a.default) } : a.default));
}

/**
 * The target the model's ai.ortfuse bodies were built for (read from their stamp), or undefined
 * when it carries none. Fails when bodies of different targets are mixed.
 */
export function bodiesTarget(model: Model): Target | undefined {
  const targets = new Set<Target>();
  for (const f of model.functions) {
    if (f.domain !== ORTFUSE_DOMAIN) continue;
    const m = /^ortfuse portable body; target=(\w+);/.exec(String(f.extra.doc_string ?? ''));
    if (m) targets.add(m[1] as Target);
  }
  if (targets.size > 1) fail('invalid', `the model carries ${ORTFUSE_DOMAIN} bodies for several targets (${[...targets].join(', ')})`);
  return targets.values().next().value;
}

/** Ensure the body of every op of `ops` the main graph calls, for `target`. Returns the ops' names. */
export function ensureFunctions(model: Model, target: Target, ops: readonly FusedOp[]): string[] {
  const used = ops.filter((o) => callers(model, o).length > 0);
  for (const o of used) ensureFunction(model, o, target);
  return used.map((o) => o.schema.name);
}
