import { FUSED_INFER_RULES, FUSED_OPS } from '../../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import { ensureFunctions } from '../../custom-ops/functions.js';
import { check } from '../ir/checker.js';
import { createModel, GraphBuilder } from '../ir/index.js';
import { inferShapes } from '../ir/infer/index.js';
import { DataType } from '../onnx/schema.js';
import { addGradients } from './backward.js';
import { sharedGrads } from './shared.js';
import { gradTable } from './table.js';
import type { GradRule } from './types.js';

const F = DataType.DOUBLE;

function swigluModel() {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const gate = b.input('gate', F, [2, 3]);
  const up = b.input('up', F, [2, 3]);
  const y = b.op.call('SwiGLU', [gate, up], {}, { domain: 'ai.ortfuse' })[0];
  const l1 = b.op.ReduceSum(y, { keepdims: 0 });
  const l2 = b.op.ReduceSum(b.op.Mul(y, y), { keepdims: 0 });
  b.output(l1, 'l1');
  b.output(l2, 'l2');
  inferShapes(m, { rules: FUSED_INFER_RULES });
  return { m, gate, up, l1, l2 };
}

describe('sharedGrads: one backward node for several input gradients', () => {
  it('builds once per forward node and backward pass; each GradFn reads its own output', () => {
    const { m, gate, up, l1 } = swigluModel();
    const { grads } = addGradients(m.graph, { loss: l1, wrt: [gate, up], rules: gradTable(FUSED_OPS) });
    const nodes = m.graph.nodes.filter((n) => n.opType === 'SwiGLUGrad');
    expect(nodes).toHaveLength(1);
    expect(grads.get(gate)).toBe(nodes[0].outputs[0]);
    expect(grads.get(up)).toBe(nodes[0].outputs[1]);
    ensureFunctions(m, 'cpu');
    check(m, 'swiglu backward');
  });

  it('a second backward pass over the same graph gets its own node (the memo is per pass, not per forward node)', () => {
    const { m, gate, up, l1, l2 } = swigluModel();
    const first = addGradients(m.graph, { loss: l1, wrt: [gate, up], rules: gradTable(FUSED_OPS) });
    const second = addGradients(m.graph, { loss: l2, wrt: [gate, up], rules: gradTable(FUSED_OPS) });
    expect(m.graph.nodes.filter((n) => n.opType === 'SwiGLUGrad')).toHaveLength(2);
    expect(second.grads.get(gate)).not.toBe(first.grads.get(gate));
    expect(second.grads.get(gate)!.producer).toBe(second.grads.get(up)!.producer);
  });

  it('a rule of this shape: build runs once even when both inputs need gradients', () => {
    let builds = 0;
    const pick = sharedGrads((g) => {
      builds++;
      const s = g.op.Sigmoid(g.x(0));
      return [g.op.Mul(g.dy(), s), g.op.Mul(g.dy(), g.op.Mul(g.x(0), s))];
    });
    const rule: GradRule = { save: { inputs: [0] }, grads: [pick(0), pick(1)] };
    const rules = new Map(gradTable(FUSED_OPS));
    rules.set('ai.ortfuse::SwiGLU', rule);
    const { m, gate, up, l1 } = swigluModel();
    addGradients(m.graph, { loss: l1, wrt: [gate, up], rules });
    expect(builds).toBe(1);
    expect(m.graph.nodes.filter((n) => n.opType === 'Sigmoid')).toHaveLength(1);
  });
});
