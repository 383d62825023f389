/**
 * Reverse-mode autodiff on the IR. The backward pass is appended to the same graph: forward values
 * the rules read are simply kept alive, and Shape ops the rules need are placed right after the
 * forward producer so they never extend a forward tensor's lifetime.
 *
 * Only values that depend on a `wrt` value, lead to the loss and have a float element type get a
 * gradient; a value read several times accumulates its contributions with Add (so a tied weight
 * read by Gather and by the lm_head gets one summed gradient).
 */
import { fail } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Graph, Node, Value } from '../ir/graph.js';
import { Tensor } from '../ir/tensor.js';
import { isSorted, toposort } from '../ir/toposort.js';
import { DataType } from '../onnx/schema.js';
import { RuleContext, scalarTensor, type BackwardState } from './context.js';
import { elemTypeOf, isFloatType } from './dtype.js';
import { ruleKey, standardRules } from './table.js';
import type { GradTable } from './types.js';

export interface GradientOptions {
  /** The value to differentiate (usually a scalar loss). */
  loss: Value;
  /** Values to differentiate with respect to: graph inputs, initializers or intermediate values. */
  wrt: Value[];
  /** The gradient of `loss` to start from (default: ones shaped like `loss`). */
  seed?: Value;
  /** Gradient rules (default: the standard ONNX ops' only; with fused ops: gradTable(ops)). */
  rules?: GradTable;
  /** Name prefix and `ortfuse.rule` tag of the nodes created (default 'autodiff'). */
  tag?: string;
  /**
   * Let rules with an `inForward` hook move their gradient into the forward pass (default true):
   * FusedLinearCrossEntropy becomes FusedLinearCrossEntropyWithGrad, as Liger-Kernel. False keeps
   * the backward-only rules (linear-CE then recomputes each chunk's logits in the backward).
   */
  inForward?: boolean;
}

export interface GradientResult {
  /** The gradient of each `wrt` value the loss depends on; values without a path are absent. */
  grads: Map<Value, Value>;
  /** The backward nodes, in the order they were appended (Shape nodes moved into the forward). */
  nodes: Node[];
}

/**
 * Append the backward pass of `graph` for `opts.loss` and return the gradients of `opts.wrt`.
 * Throws an 'unsupported' error naming the node when an op on a differentiable path has no rule.
 */
export function addGradients(graph: Graph, opts: GradientOptions): GradientResult {
  if (!isSorted(graph)) toposort(graph);
  const opset = graph.model.opset('') ?? fail('invalid', 'autodiff: the model does not import the ONNX domain');
  const rules = opts.rules ?? standardRules();
  const b = new GraphBuilder(graph, { tag: opts.tag ?? 'autodiff' });
  const types = new Map<Value, number | undefined>();
  const elemType = (v: Value) => elemTypeOf(v, types);
  const wrt = new Set(opts.wrt);
  let forward = graph.nodes.slice();

  // Values that depend on a wrt value through float values, and values the loss depends on.
  const fromWrt = new Set<Value>(opts.wrt);
  for (const n of forward)
    if (n.inputs.some((v) => v && fromWrt.has(v)))
      for (const o of n.outputs) if (isFloatType(elemType(o))) fromWrt.add(o);
  const toLoss = new Set<Value>([opts.loss]);
  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k];
    if (n.outputs.some((o) => toLoss.has(o))) for (const v of n.inputs) if (v) toLoss.add(v);
  }
  const active = (v: Value | null): v is Value => !!v && fromWrt.has(v) && toLoss.has(v) && isFloatType(elemType(v));
  const activeInputs = (n: Node): number[] => n.inputs.map((v, i) => (active(v) ? i : -1)).filter((i) => i >= 0);

  // In-forward gradients: swap nodes before any backward node reads them (output values are kept,
  // so the sets above stay valid).
  if (opts.inForward !== false) {
    for (const n of forward) {
      const hook = rules.get(ruleKey(n.domain, n.opType))?.inForward;
      const targets = hook && n.outputs.some((o) => toLoss.has(o)) ? activeInputs(n) : [];
      if (targets.length) hook!(n, targets);
    }
    forward = graph.nodes.slice();
  }

  const contributions = new Map<Value, Value[]>();
  const summed = new Map<Value, Value>();
  const shapes = new Map<Value, Value>();
  const hoisted: [Node, Value][] = [];
  const consts = new Map<string, Value>();

  const state: BackwardState = {
    b,
    opset,
    gradOf(v) {
      const done = summed.get(v);
      if (done) return done;
      const parts = contributions.get(v);
      if (!parts?.length) return undefined;
      let s = parts[0];
      for (const p of parts.slice(1)) s = b.op.Add(s, p);
      if (parts.length > 1 && v.type && !s.type) s.type = v.type;
      summed.set(v, s);
      return s;
    },
    shapeOf(v) {
      let s = shapes.get(v);
      if (!s) {
        s = b.op.Shape(v);
        hoisted.push([s.producer!, v]);
        shapes.set(v, s);
      }
      return s;
    },
    elemType,
    constValues(v) {
      if (wrt.has(v)) return undefined;
      if (v.initializer) return v.initializer.inMemory && v.initializer.size <= 64 ? v.initializer.toNumbers() : undefined;
      const p = v.producer;
      if (p?.opType !== 'Constant' || (p.domain !== '' && p.domain !== 'ai.onnx')) return undefined;
      const t = p.attrTensor('value');
      if (t) return t.size <= 64 ? t.toNumbers() : undefined;
      for (const name of ['value_int', 'value_float']) if (p.attr(name)) return [Number(p.attr(name)!.value)];
      for (const name of ['value_ints', 'value_floats']) if (p.attr(name)) return (p.attr(name)!.value as (number | bigint)[]).map(Number);
      return undefined;
    },
    scalar(value, t) {
      const key = `${t}:${Object.is(value, -0) ? '-0' : value}`;
      let c = consts.get(key);
      if (!c) consts.set(key, (c = b.initializer(`${opts.tag ?? 'autodiff'}/c`, scalarTensor(value, t))));
      return c;
    },
    ints(values) {
      const key = `i:${JSON.stringify(values)}`;
      let c = consts.get(key);
      if (!c) {
        const arr = Array.isArray(values) ? values : [values];
        const dims = Array.isArray(values) ? [arr.length] : [];
        consts.set(key, (c = b.initializer(`${opts.tag ?? 'autodiff'}/c`, Tensor.from(DataType.INT64, dims, arr.map(BigInt)))));
      }
      return c;
    },
  };

  const add = (v: Value, g: Value) => {
    if (summed.has(v)) fail('invalid', `autodiff: internal: gradient of '${v.name}' was read before all its uses were processed`);
    if (!g.type && v.type) g.type = v.type;
    const list = contributions.get(v);
    if (list) list.push(g);
    else contributions.set(v, [g]);
  };

  add(opts.loss, opts.seed ?? ones(state, opts.loss));

  for (let k = forward.length - 1; k >= 0; k--) {
    const n = forward[k];
    if (!n.outputs.some((o) => contributions.has(o))) continue;
    const targets = activeInputs(n);
    if (!targets.length) continue;
    const rule = rules.get(ruleKey(n.domain, n.opType)) ?? fail('unsupported', `autodiff: no gradient rule for ${n.label}, which lies between a parameter and the loss`);
    const ctx = new RuleContext(n, rule, state);
    for (const i of targets) {
      const fn = i < rule.grads.length ? rule.grads[i] : rule.variadic;
      const g = fn?.(ctx, i);
      if (g) add(n.inputs[i]!, g);
    }
  }

  hoistShapes(graph, hoisted);
  const grads = new Map<Value, Value>();
  for (const v of opts.wrt) {
    const g = state.gradOf(v);
    if (g) grads.set(v, g);
  }
  return { grads, nodes: b.nodes };
}

/** The default seed: 1 for a 0-D loss, ones shaped like it otherwise. */
function ones(s: BackwardState, loss: Value): Value {
  const t = s.elemType(loss);
  if (!isFloatType(t)) fail('usage', `autodiff: the loss '${loss.name}' is not a float tensor`);
  const one = s.scalar(1, t!);
  if (loss.tensorType?.shape?.length === 0) return one;
  return s.b.op.Expand(one, s.shapeOf(loss));
}

/** Move each Shape node to just after the producer of the value it reads. */
function hoistShapes(graph: Graph, hoisted: [Node, Value][]): void {
  if (!hoisted.length) return;
  const moving = new Set(hoisted.map(([n]) => n));
  const after = new Map<Node | undefined, Node[]>();
  for (const [n, v] of hoisted) {
    const p = v.producer && v.producer.graph === graph ? v.producer : undefined;
    const list = after.get(p) ?? [];
    list.push(n);
    after.set(p, list);
  }
  const out: Node[] = [...(after.get(undefined) ?? [])];
  for (const n of graph.nodes) {
    if (moving.has(n)) continue;
    out.push(n);
    const list = after.get(n);
    if (list) out.push(...list);
  }
  graph.nodes = out;
}
