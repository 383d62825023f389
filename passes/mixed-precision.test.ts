/**
 * mixed-precision: on the fused tiny Qwen2 (MLP fusion on), precision="f16" lands on exactly the
 * SwiGLUMLP and FusedLinearCrossEntropy nodes (and Linear with the projections fused), the ops whose
 * schema declares the attribute, and nowhere else; ops whose schema lacks it are left alone (the
 * count says so).
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import type { FusedOp } from '../src/fused/types.js';
import { ORTFUSE_DOMAIN } from '../src/fused/types.js';
import type { Model } from '../src/ir/graph.js';
import { defaultPipeline, runPipeline } from '../src/pipeline.js';
import { PRECISION_ATTR as PRECISION_SPEC } from '../custom-ops/precision.js';
import { markMixedPrecision } from './mixed-precision.js';

const PRECISION_ATTR = PRECISION_SPEC.name;

function fusedTiny(linear = false): Model {
  const m = buildQwen2(TINY, { seed: 3 });
  runPipeline(m, defaultPipeline({ mlp: true, linear }), { options: { training: true } });
  return m;
}

const precisionOf = (m: Model) => m.graph.nodes.filter((n) => n.attr(PRECISION_ATTR)).map((n) => [n.opType, n.attrString(PRECISION_ATTR)]);

describe('mixed-precision', () => {
  it('marks every SwiGLUMLP and FusedLinearCrossEntropy node (2 layers + the loss) and nothing else', () => {
    const m = fusedTiny();
    const counts = new Map<string, number>();
    for (const n of m.graph.nodes) if (n.domain === ORTFUSE_DOMAIN) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
    expect(counts.get('SwiGLUMLP')).toBe(TINY.num_hidden_layers);
    expect(counts.get('FusedLinearCrossEntropy')).toBe(1);
    expect(counts.get('RMSNorm')).toBeGreaterThan(0);
    expect(markMixedPrecision(m)).toBe(TINY.num_hidden_layers + 1);
    const marked = precisionOf(m);
    expect(marked.map(([op]) => op).sort()).toEqual(['FusedLinearCrossEntropy', 'SwiGLUMLP', 'SwiGLUMLP']);
    for (const [, v] of marked) expect(v).toBe('f16');
    expect(m.graph.nodes.find((n) => n.attr(PRECISION_ATTR))!.attr(PRECISION_ATTR)!.type).toBe('STRING');
    // Marking twice changes nothing more.
    expect(markMixedPrecision(m)).toBe(TINY.num_hidden_layers + 1);
    expect(precisionOf(m)).toHaveLength(TINY.num_hidden_layers + 1);
  });

  it('with the projections fused, the Linear nodes too (4 a layer): every op that declares the attribute', () => {
    const m = fusedTiny(true);
    expect(markMixedPrecision(m)).toBe(TINY.num_hidden_layers * 5 + 1);
    expect(new Set(precisionOf(m).map(([op]) => op))).toEqual(new Set(['FusedLinearCrossEntropy', 'SwiGLUMLP', 'Linear']));
  });

  it('leaves an op alone whose schema does not declare precision (its checker would refuse the attribute)', () => {
    const m = fusedTiny();
    const without: Pick<FusedOp, 'schema'>[] = FUSED_OPS.map((o) => (o.schema.name === 'SwiGLUMLP' ? { schema: { ...o.schema, attributes: o.schema.attributes.filter((a) => a.name !== PRECISION_ATTR) } } : o));
    expect(markMixedPrecision(m, without)).toBe(1);
    expect(precisionOf(m).map(([op]) => op)).toEqual(['FusedLinearCrossEntropy']);
    // The registry as built: exactly the ops that declare the attribute are marked.
    const m2 = fusedTiny();
    const declared = new Set(FUSED_OPS.filter((o) => o.schema.attributes.some((a) => a.name === PRECISION_ATTR)).map((o) => o.schema.name));
    const expected = m2.graph.nodes.filter((n) => n.domain === ORTFUSE_DOMAIN && declared.has(n.opType)).length;
    expect(markMixedPrecision(m2)).toBe(expected);
  });

  it('an unfused model has nothing to mark', () => {
    expect(markMixedPrecision(buildQwen2(TINY, { seed: 3 }))).toBe(0);
  });
});
