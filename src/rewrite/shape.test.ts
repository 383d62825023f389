import { describe, expect, it } from 'vitest';
import { createModel, GraphBuilder } from '../ir/index.js';
import { DataType } from '../onnx/schema.js';
import { checkShape } from './shape.js';

describe('checkShape', () => {
  const b = new GraphBuilder(createModel().graph);
  const x = b.input('x', DataType.FLOAT, ['batch', 'seq', 64]);
  const w = b.input('w', DataType.FLOAT, [64, 64]);
  const u = b.input('u', DataType.FLOAT, [null, 64]);
  const r = b.input('r', DataType.FLOAT);

  it('binds names consistently and checks sizes', () => {
    expect(checkShape(x, ['B', 'S', 'D'])).toEqual({ ok: true, dims: { B: 'batch', S: 'seq', D: 64 } });
    expect(checkShape(x, ['B', 'S', 64]).ok).toBe(true);
    expect(checkShape(w, ['D', 'D']).ok).toBe(true);
    expect(checkShape(x, ['B', 'B', 'D'])).toMatchObject({ ok: false, reason: "'x' [batch,seq,64]: dim 1 is seq, expected B = batch" });
    expect(checkShape(x, ['B', 'S', 32])).toMatchObject({ ok: false, reason: "'x' [batch,seq,64]: dim 2 is 64, expected 32" });
    expect(checkShape(x, ['B', 'D'])).toMatchObject({ ok: false, reason: "'x' [batch,seq,64]: expected rank 2" });
  });

  it("supports '...', null, bindings from an earlier check, and unknowns", () => {
    const first = checkShape(x, ['...', 'D']);
    expect(first).toEqual({ ok: true, dims: { D: 64 } });
    expect(checkShape(w, ['D', null], first.ok ? first.dims : {}).ok).toBe(true);
    expect(checkShape(u, ['N', 'D']).ok).toBe(true);
    expect(checkShape(u, ['N', 'N'])).toMatchObject({ ok: false });
    expect(checkShape(x, ['...', 'B', 'S', 'D']).ok).toBe(true);
    expect(checkShape(r, ['...'])).toMatchObject({ ok: false, reason: "'r' [?]: rank unknown", value: r });
  });
});
