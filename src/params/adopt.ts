/**
 * Give an exported model its parameters back as torch had them: one float initializer per torch
 * parameter, named by its torch name, in torch layout.
 * - untie: an initializer the exporter merged (equal contents) becomes one copy per parameter;
 * - unfold: a folded `Transpose(W)` (`val_N` = Wᵀ) becomes W plus a Transpose node, the form the
 *   fusion passes and the recomputation expect (and the one full-size exports have);
 * - rename: `val_N` / `lm_head.weight` → the torch name (`model.layers.0.self_attn.q_proj.weight`,
 *   `model.embed_tokens.weight` for a tied embedding; aliases kept in the report).
 * Values the record does not tie to a parameter stay as they are (constants, buffers).
 */
import type { Model, Value } from '../ir/graph.js';
import { Value as IrValue } from '../ir/graph.js';
import { GraphBuilder } from '../ir/builder.js';
import { Tensor, type TypedArray } from '../ir/tensor.js';
import { tensorType } from '../ir/types.js';
import type { DiscoveredParameter, ParameterDiscovery } from './discover.js';

export interface AdoptReport {
  /** Parameters that had to be given their own copy of a merged initializer. */
  untied: number;
  /** Folded transposes turned back into W + Transpose. */
  unfolded: number;
  /** Initializers renamed to their torch name. */
  renamed: number;
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.dims;
  const a = t.toArray() as TypedArray & ArrayLike<number>;
  const out = new (a.constructor as new (n: number) => Float32Array)(a.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = a[i * c + j] as number;
  return Tensor.from(t.dtype, [c, r], out);
}

/** True when `p` is the only reader of its one initializer, in torch layout. */
function ownsItsInitializer(p: DiscoveredParameter): boolean {
  const v = p.uses[0].value;
  return p.uses.every((u) => u.value === v && !u.transposed) && v.useCount === p.uses.length && !v.isGraphOutput() && !v.isGraphInput();
}

/** Rewrite `m` so each discovered parameter is its own initializer under its torch name. */
export function adoptParameters(m: Model, d: ParameterDiscovery): AdoptReport {
  const g = m.graph;
  const report: AdoptReport = { untied: 0, unfolded: 0, renamed: 0 };
  if (d.method !== 'torch-record') return report;
  const touched = new Set<Value>();
  const made: { p: DiscoveredParameter; v: Value }[] = [];
  const owners = new Set(d.parameters.filter(ownsItsInitializer)); // decided before any use moves
  for (const p of d.parameters) {
    if (owners.has(p)) {
      made.push({ p, v: p.uses[0].value });
      continue;
    }
    const src = p.uses[0];
    const t = src.transposed ? transpose2d(src.value.initializer!) : src.value.initializer!;
    const v = new IrValue(g, `\0pending.${p.name}`);
    v.initializer = t;
    v.type = tensorType(t.dtype, t.dims.slice());
    g.initializers.push(v);
    made.push({ p, v });
    const shared = p.uses.some((u) => u.value.uses().some((w) => !p.uses.some((x) => x.node === w.node && x.index === w.index)));
    if (shared) report.untied++;
    let vt: Value | undefined;
    for (const u of p.uses) {
      touched.add(u.value);
      if (u.transposed) {
        if (!vt) {
          const first = g.nodes.find((n) => p.uses.some((x) => x.node === n && x.transposed))!;
          vt = new GraphBuilder(g, { before: first }).op.Transpose(v, { perm: [1, 0] });
          vt.type = tensorType(t.dtype, [...t.dims].reverse());
          // The reader's record goes onto the Transpose too, so discovery finds the same parameter again.
          vt.producer!.extra.metadata_props = [...(first.extra.metadata_props ?? []), { key: 'ortfuse.rule', value: 'adopt-parameters' }];
          report.unfolded++;
        }
        u.node.setInput(u.index, vt);
      } else u.node.setInput(u.index, v);
    }
  }
  // Drop initializers nothing reads any more, then name every parameter by its torch name.
  const dead = new Set([...touched].filter((v) => v.useCount === 0 && !v.isGraphOutput() && !v.isGraphInput()));
  g.initializers = g.initializers.filter((v) => !dead.has(v));
  for (const v of dead) m.releaseName(v.name);
  const renames = made.filter(({ p, v }) => v.name !== p.name);
  for (const { v } of renames) if (!v.name.startsWith('\0')) m.releaseName(v.name);
  for (const { p, v } of renames) {
    v.name = m.freshName(p.name);
    if (v.name !== p.name) {
      // Another value holds the torch name (rare: a constant of the same name); keep the fresh one.
      p.name = v.name;
    }
    report.renamed++;
  }
  return report;
}

/**
 * Name the loss `loss`: exports without output names call it `cross_entropy_loss` (or `add_N`).
 * The loss is the graph's one float scalar output. Returns the old name when it renamed.
 */
export function nameLoss(m: Model): string | undefined {
  const g = m.graph;
  if (g.findValue('loss')) return undefined;
  const scalars = g.outputs.filter((v) => v.tensorType && v.tensorType.shape?.length === 0 && [1, 10, 11, 16].includes(v.tensorType.elemType));
  if (scalars.length !== 1) return undefined;
  const v = scalars[0];
  const old = v.name;
  m.releaseName(old);
  v.name = m.freshName('loss');
  return old;
}
