/**
 * scatter-add-into — a scatter-add onto zeros that is then added to a tensor of the zeros' shape
 * scatters into that tensor instead:
 *
 *   Add(A, ScatterND(Z, idx, upd, reduction='add'))  →  ScatterND(A, idx, upd, reduction='add')
 *   Z = Expand(0, shape) or ConstantOfShape(shape, 0); A of Z's shape and element type
 *
 * (ONNX ScatterND, opset 16+: https://onnx.ai/onnx/operators/onnx__ScatterND.html — the output is
 * the data with each update row added at its index, in update order.) A tied weight's gradient
 * has this form after autodiff: the lm_head's gradient plus the embedding Gather's (its rule
 * scatters onto zeros, src/autodiff/rules/gather.ts). Rewritten, a step no longer holds the
 * [V, H] zeros (151936×896 fp32 = 545 MB in Qwen2-0.5B), clears them, or reads and writes them
 * once more in the Add. The sums differ only in rounding order (A + (0 + u₀ + u₁…) becomes
 * A + u₀ + u₁…).
 *
 * Either Add operand order matches. Not rewritten: a ScatterND another node (or a graph output)
 * reads, data that are not such zeros (src/rewrite/constant.ts zerosOfShape), or A whose shape or
 * element type is not provably Z's (the Add would broadcast or convert). The Add's output keeps
 * its name (a graph output such as grad.lm_head.weight); the zeros' Expand is left for dce.
 */
import type { Dim } from '../src/ir/types.js';
import type { Value } from '../src/ir/graph.js';
import { formatShape } from '../src/ir/types.js';
import { zerosOfShape } from '../src/rewrite/constant.js';
import { p, v } from '../src/rewrite/pattern.js';
import { defineRule, no, ok, rulePass } from '../src/rewrite/rule.js';
import { sameShape } from './fusion-shapes.js';

const a = v('a');
const z = v('z');
const idx = v('idx');
const upd = v('upd');

/** Z's shape: its own type, the scatter's output (ScatterND keeps the data's shape), or that of the Shape(x) it expands to. */
function zerosShape(zeros: Value, shape: Value | null, scattered: Value): Dim[] | undefined {
  const fromShapeOf = shape?.producer?.opType === 'Shape' && !shape.producer.attr('start') && !shape.producer.attr('end') ? shape.producer.inputs[0]?.tensorType?.shape : undefined;
  return zeros.tensorType?.shape ?? scattered.tensorType?.shape ?? fromShapeOf;
}

export const scatterAddInto = defineRule({
  name: 'scatter-add-into',
  // Add(A, ScatterND(Z, idx, upd, add)) -> ScatterND(A, idx, upd, add)
  pattern: p.Add(a, p.ScatterND(z, idx, upd, { reduction: 'add' })),
  check(m) {
    const zeros = zerosOfShape(m.values.z);
    if (!zeros.ok) return no(zeros.why, m.values.z);
    const data = m.values.a;
    const scattered = m.nodes.find((n) => n.opType === 'ScatterND')!.outputs[0];
    if (data === scattered) return no(`the Add reads '${data.name}' twice`, data);
    const t = data.tensorType;
    if (t?.elemType !== zeros.dtype) return no(`'${data.name}' is not of the zeros' element type`, data);
    const zs = zerosShape(m.values.z, zeros.shape, scattered);
    if (!sameShape(t.shape, zs)) return no(`'${data.name}' ${formatShape(t.shape)} is not provably the zeros' shape ${formatShape(zs)}`, data);
    return ok(undefined);
  },
  rewrite: (b, m) => b.op.ScatterND(m.values.a, m.values.idx, m.values.upd, { reduction: 'add' }),
});

/** The scatter-add-into pass (run on the training-step graph: src/pipeline.ts stepPipeline). */
export const scatterAddIntoPass = rulePass('scatter-add-into', [scatterAddInto]);
