/**
 * specialize-shapes — fix named graph inputs to static shapes (e.g. input_ids and labels to the
 * batch's [B, T]) and fold what then becomes constant: the symbols of the old dims are bound
 * (batch → B, seq → T) in every value type of the main graph and its subgraphs ('batch*seq',
 * 'seq-1' evaluate), types are re-inferred, and the cleanup passes (constant-fold, remove-noops,
 * cse, dce) run to a fixed point, so Shape-derived plumbing (Shape/Gather/Concat/Range/...) becomes
 * initializers instead of nodes that a WebGPU EP runs on the CPU every step.
 *
 * For a runtime that builds one session per batch shape (the webgpu backend); the result is only
 * valid for inputs of exactly these shapes. Function bodies stay generic (ORT folds inside them
 * once inlined, from the static shapes).
 */
import { FUSED_INFER_RULES } from '../custom-ops/registry.js';
import { fail } from '../src/errors.js';
import type { Graph, Model, Value } from '../src/ir/graph.js';
import { modelGraphs } from '../src/ir/walk.js';
import { evalDim, inferShapes } from '../src/ir/infer/index.js';
import { tensorType, type Dim } from '../src/ir/types.js';
import type { Pass, PassContext, PassResult } from '../src/rewrite/pass.js';
import { constantFold } from './constant-fold.js';
import { cse } from './cse.js';
import { dce, nonZero } from './dce.js';
import { removeNoops } from './remove-noops.js';

/** Cleanup rounds at most (each round folds what the previous one exposed). */
const MAX_ROUNDS = 8;

/** Fix the shapes of graph inputs by name; counts folded/removed nodes per pass and `inputs`. */
export function specializeShapes(shapes: Record<string, number[]>): Pass {
  return {
    name: 'specialize-shapes',
    run(model: Model, ctx: PassContext): PassResult {
      const bindings = bindInputs(model.graph, shapes);
      let changedTypes = 0;
      for (const g of modelGraphs(model)) for (const v of valuesOf(g)) if (bindType(v, bindings)) changedTypes++;
      inferShapes(model, { rules: FUSED_INFER_RULES });
      const counts: Record<string, number> = { inputs: Object.keys(shapes).length, types: changedTypes };
      for (let round = 0; round < MAX_ROUNDS; round++) {
        let modified = false;
        for (const p of [constantFold, removeNoops, cse, dce]) {
          const r = p.run(model, ctx);
          modified ||= r.modified;
          for (const [k, n] of Object.entries(r.counts)) counts[`${p.name}.${k}`] = (counts[`${p.name}.${k}`] ?? 0) + n;
        }
        if (!modified) break;
      }
      return { modified: true, counts: nonZero(counts) };
    },
  };
}

/** Set the inputs' shapes; returns the symbol bindings their old dims imply. */
function bindInputs(g: Graph, shapes: Record<string, number[]>): Record<string, number> {
  const bindings: Record<string, number> = {};
  for (const [name, dims] of Object.entries(shapes)) {
    const v = g.inputs.find((i) => i.name === name) ?? fail('invalid', `specialize-shapes: the graph has no input '${name}'`);
    const t = v.tensorType ?? fail('invalid', `specialize-shapes: input '${name}' is not a typed tensor`);
    if (dims.some((d) => !Number.isInteger(d) || d < 0)) fail('invalid', `specialize-shapes: bad shape [${dims}] for '${name}'`);
    if (t.shape && t.shape.length !== dims.length) fail('invalid', `specialize-shapes: '${name}' has rank ${t.shape.length}, not ${dims.length}`);
    t.shape?.forEach((d, i) => {
      const want = dims[i];
      if (typeof d === 'number' && d !== want) fail('invalid', `specialize-shapes: dim ${i} of '${name}' is ${d}, not ${want}`);
      if (typeof d === 'string') {
        if (d in bindings && bindings[d] !== want) fail('invalid', `specialize-shapes: '${d}' is both ${bindings[d]} and ${want}`);
        bindings[d] = want;
      }
    });
    v.type = tensorType(t.elemType, dims.slice());
  }
  return bindings;
}


function valuesOf(g: Graph): Set<Value> {
  const vs = new Set<Value>([...g.inputs, ...g.outputs]);
  for (const n of g.nodes) for (const o of n.outputs) vs.add(o);
  return vs;
}

/** Replace bound symbols in v's shape; a symbolic dim that mentions a bound symbol but cannot be evaluated becomes unknown. */
function bindType(v: Value, bindings: Record<string, number>): boolean {
  const t = v.tensorType;
  if (!t?.shape || !t.shape.some((d) => typeof d === 'string')) return false;
  let changed = false;
  const shape = t.shape.map((d): Dim => {
    if (typeof d !== 'string') return d;
    const e = evalDim(d, bindings);
    if (e !== null) {
      changed = true;
      return e;
    }
    if (Object.keys(bindings).some((s) => new RegExp(`(^|[^\\w])${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^\\w]|$)`).test(d))) {
      changed = true;
      return null;
    }
    return d;
  });
  if (changed) v.type = tensorType(t.elemType, shape);
  return changed;
}
