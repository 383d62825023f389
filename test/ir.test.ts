import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder, commit, checkModel } from '../src/ir/index.js';
import { DataType } from '../src/onnx/schema.js';
import { loadBytes, saveBytes } from '../src/onnx/io.js';

describe('IR basics', () => {
  it('builds, commits a rewrite and round-trips', () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', DataType.FLOAT, ['B', 8]);
    const y = b.op.Mul(x, b.op.Sigmoid(x));
    b.output(y, 'y');
    expect(checkModel(m)).toEqual([]);
    // Replace Mul(x, Sigmoid(x)) by a staged node.
    const s = new GraphBuilder(m.graph, { staged: true, tag: 'test' });
    const z = s.op.call('SiLU', [x], {}, { domain: 'ai.ortfuse' })[0];
    m.opsetImports.set('ai.ortfuse', 1);
    commit(m.graph, { remove: m.graph.nodes.slice(), add: s.nodes, replace: [[y, z]] });
    expect(m.graph.nodes.map((n) => n.opType)).toEqual(['SiLU']);
    expect(m.graph.outputs[0].name).toBe('y');
    expect(checkModel(m)).toEqual([]);
    const back = loadBytes(saveBytes(m));
    expect(back.graph.nodes[0].opType).toBe('SiLU');
    expect(back.graph.outputs[0].name).toBe('y');
  });

  it('commit changes nothing when the edit is invalid', () => {
    const m = createModel();
    const b = new GraphBuilder(m.graph);
    const x = b.input('x', DataType.FLOAT, [4]);
    const s1 = b.op.Sigmoid(x);
    const y = b.op.Mul(x, s1);
    b.output(y, 'y');
    const before = m.graph.nodes.slice();
    // Removing the Sigmoid alone leaves its reader dangling: must fail and change nothing.
    expect(() => commit(m.graph, { remove: [s1.producer!] })).toThrow(/still read/);
    expect(m.graph.nodes).toEqual(before);
    expect(checkModel(m)).toEqual([]);
  });
});
