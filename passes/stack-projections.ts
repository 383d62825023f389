/**
 * stack-projections — the Linear ops (passes/fuse-linear.ts) that project one input become one
 * Linear over their weights stacked along N, and a Split of its output:
 *
 *   Linear(x, W₁, b₁), …, Linear(x, Wₖ, bₖ)
 *     →  y = Linear(x, Concat(W₁, …, Wₖ, axis 0), Concat(b₁, …, bₖ, axis 0));  Split(y, [N₁, …, Nₖ], axis −1)
 *
 * In a Qwen2 layer: q, k and v (896, 128 and 128 outputs from the same normed hidden state) become
 * one 1152-wide product, so the GEMMs of the narrow k and v projections (N = 128: too few tiles to
 * fill a GPU) join q's, forward and in the backward (one dX and one dW GEMM instead of three each,
 * and no sum of three dX). The weights stay separate parameters: autodiff's Concat rule slices the
 * stacked weight's gradient back into one per weight (src/autodiff/rules/shape.ts), and training
 * output keeps their names. The Concat, Split and the gradient's Slices run as block copies on
 * the webgpu backend's glue (src/runtime/webgpu/glue.ts).
 *
 * A group is every Linear reading x with trans_b = 1, the same precision and element type, weights
 * [Nᵢ, K] of static shape, and all with a bias or none; with `options.trainable` (a set of
 * parameter names), only weights (and biases) that train: a frozen weight stacked with trained
 * ones would get a weight gradient computed for nothing (LoRA's frozen base projections). Groups of
 * one are left alone. Runs after fuse-linear (src/pipeline.ts, FusionOptions.stackProjections).
 * Counts: { 'stack-projections': Linear nodes removed }.
 */
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import { GraphBuilder } from '../src/ir/builder.js';
import type { Graph, Model, Node, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorType } from '../src/ir/types.js';
import { DataType } from '../src/onnx/schema.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { PRECISION_ATTR } from '../custom-ops/precision.js';

export const NAME = 'stack-projections';

/** Whether the Linear node `n` can join a group (see the header). */
function stackable(n: Node, trainable: ReadonlySet<string> | undefined): boolean {
  if (n.domain !== ORTFUSE_DOMAIN || n.opType !== 'Linear' || n.attrInt('trans_b', 1) !== 1 || n.outputs[0].isGraphOutput()) return false;
  const w = n.inputs[1], b = n.inputs[2];
  const s = w?.tensorType?.shape;
  if (!w || !s || s.length !== 2 || typeof s[0] !== 'number' || typeof s[1] !== 'number') return false;
  return !trainable || (trainable.has(w.name) && (!b || trainable.has(b.name)));
}

/** The key a group's members share: element type, K, precision, bias or not. */
function groupKey(n: Node): string {
  const w = n.inputs[1]!;
  return [w.tensorType?.elemType, w.tensorType?.shape?.[1], n.attrString(PRECISION_ATTR.name, ''), n.inputs[2] ? 'b' : ''].join(';');
}

/** Replace one group of Linear nodes reading `x` (see the header). */
function stack(g: Graph, x: Value, group: Node[]): void {
  // Before the group's first node (`group` is in graph order): x and the weights are defined there.
  const b = new GraphBuilder(g, { before: group[0], tag: NAME });
  const elem = group[0].inputs[1]!.tensorType!.elemType;
  const sizes = group.map((n) => n.inputs[1]!.tensorType!.shape![0] as number);
  const total = sizes.reduce((s, v) => s + v, 0);
  const k = group[0].inputs[1]!.tensorType!.shape![1] as number;
  const w = b.op.Concat(...group.map((n) => n.inputs[1]!), { axis: 0 });
  w.type = tensorType(elem, [total, k]);
  const bias = group[0].inputs[2] ? b.op.Concat(...group.map((n) => n.inputs[2]!), { axis: 0 }) : undefined;
  if (bias) bias.type = tensorType(elem, [total]);
  const precision = group[0].attr(PRECISION_ATTR.name);
  const y = b.op.call('Linear', [x, w, ...(bias ? [bias] : [])], precision ? { [PRECISION_ATTR.name]: precision } : {}, { domain: ORTFUSE_DOMAIN })[0];
  const xs = x.tensorType?.shape;
  y.type = tensorType(elem, xs && [...xs.slice(0, -1), total]);
  const opset = g.model.opset('') ?? 13;
  const parts = opset >= 13
    ? b.op.call('Split', [y, b.initializer(`${NAME}/sizes`, Tensor.from(DataType.INT64, [sizes.length], sizes.map(BigInt)))], { axis: -1 }, { outputs: group.length })
    : b.op.call('Split', [y], { axis: -1, split: sizes }, { outputs: group.length });
  group.forEach((n, i) => {
    parts[i].type = n.outputs[0].type;
    g.replaceAllUses(n.outputs[0], parts[i]);
  });
  g.removeNodes(group);
}

export const stackProjections: Pass = {
  name: NAME,
  run(model: Model, ctx): PassResult {
    const trainable = ctx.options.trainable as ReadonlySet<string> | undefined;
    const g = model.graph;
    let removed = 0;
    const seen = new Set<Value>();
    for (const n of [...g.nodes]) {
      const x = n.inputs[0];
      if (!x || seen.has(x) || !stackable(n, trainable)) continue;
      seen.add(x);
      const groups = new Map<string, Node[]>();
      for (const u of x.uses())
        if (u.index === 0 && u.node.graph === g && stackable(u.node, trainable)) {
          const key = groupKey(u.node);
          groups.set(key, [...(groups.get(key) ?? []), u.node]);
        }
      for (const group of groups.values()) {
        if (group.length < 2) continue;
        stack(g, x, group.sort((a, c) => g.nodes.indexOf(a) - g.nodes.indexOf(c)));
        removed += group.length - 1;
      }
    }
    return { modified: removed > 0, counts: removed ? { [NAME]: removed } : {} };
  },
};
