/**
 * mixed-precision: on the fused tiny Qwen2 (MLP fusion on), precision="f16" lands on exactly the
 * SwiGLUMLP and FusedLinearCrossEntropy nodes whose schema declares the attribute, and nowhere else;
 * ops whose schema lacks it are left alone (the count says so).
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import type { FusedOp } from '../src/fused/types.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { Model } from '../src/ir/graph.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { markMixedPrecision, MIXED_PRECISION_OPS, PRECISION_ATTR } from './mixed-precision.js';

function fusedTiny(): Model {
  const m = buildQwen2(TINY, { seed: 3 });
  runPipeline(m, defaultPipeline({ mlp: true }), { options: { training: true } });
  return m;
}

/** The registry's schemas, each op of MIXED_PRECISION_OPS declaring `precision` (as the ops that honour it do). */
const withPrecision: Pick<FusedOp, 'schema'>[] = FUSED_OPS.map((o) =>
  MIXED_PRECISION_OPS.includes(o.schema.name) && !o.schema.attributes.some((a) => a.name === PRECISION_ATTR)
    ? { schema: { ...o.schema, attributes: [...o.schema.attributes, { name: PRECISION_ATTR, type: 'STRING' as const, default: 'fp32', values: ['fp32', 'f16'], doc: 'GEMM operands' }] } }
    : o,
);

const precisionOf = (m: Model) => m.graph.nodes.filter((n) => n.attr(PRECISION_ATTR)).map((n) => [n.opType, n.attrString(PRECISION_ATTR)]);

describe('mixed-precision', () => {
  it('marks every SwiGLUMLP and FusedLinearCrossEntropy node (2 layers + the loss) and nothing else', () => {
    const m = fusedTiny();
    const counts = new Map<string, number>();
    for (const n of m.graph.nodes) if (n.domain === ORTFUSE_DOMAIN) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    expect(counts.get('SwiGLUMLP')).toBe(TINY.num_hidden_layers);
    expect(counts.get('FusedLinearCrossEntropy')).toBe(1);
    expect(counts.get('RMSNorm')).toBeGreaterThan(0);
    expect(markMixedPrecision(m, withPrecision)).toBe(TINY.num_hidden_layers + 1);
    const marked = precisionOf(m);
    expect(marked.map(([op]) => op).sort()).toEqual(['FusedLinearCrossEntropy', 'SwiGLUMLP', 'SwiGLUMLP']);
    for (const [, v] of marked) expect(v).toBe('f16');
    expect(m.graph.nodes.find((n) => n.attr(PRECISION_ATTR))!.attr(PRECISION_ATTR)!.type).toBe('STRING');
    // Marking twice changes nothing more.
    expect(markMixedPrecision(m, withPrecision)).toBe(TINY.num_hidden_layers + 1);
    expect(precisionOf(m)).toHaveLength(TINY.num_hidden_layers + 1);
  });

  it('leaves an op alone whose schema does not declare precision (its checker would refuse the attribute)', () => {
    const m = fusedTiny();
    const without = withPrecision.map((o) => (o.schema.name === 'SwiGLUMLP' ? { schema: { ...o.schema, attributes: o.schema.attributes.filter((a) => a.name !== PRECISION_ATTR) } } : o));
    expect(markMixedPrecision(m, without)).toBe(1);
    expect(precisionOf(m).map(([op]) => op)).toEqual(['FusedLinearCrossEntropy']);
    // The registry as built: exactly the ops that declare the attribute are marked.
    const m2 = fusedTiny();
    const declared = new Set(FUSED_OPS.filter((o) => o.schema.attributes.some((a) => a.name === PRECISION_ATTR)).map((o) => o.schema.name));
    const expected = m2.graph.nodes.filter((n) => n.domain === ORTFUSE_DOMAIN && MIXED_PRECISION_OPS.includes(n.opType) && declared.has(n.opType)).length;
    expect(markMixedPrecision(m2)).toBe(expected);
  });

  it('an unfused model has nothing to mark', () => {
    expect(markMixedPrecision(buildQwen2(TINY, { seed: 3 }), withPrecision)).toBe(0);
  });
});
