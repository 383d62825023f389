/**
 * The row-wise WGSL programs of the linear-cross-entropy kernel (the matmuls are the shared
 * src/webgpu/matmul.ts). Math, per row i of a chunk, with z_i the logits row (+ bias), y_i the label,
 * ε the label smoothing, V the vocab, n the count of non-ignored labels:
 *
 *   m_i   = max_c z_ic,  lse_i = m_i + log Σ_c exp(z_ic − m_i)                  (fp32)
 *   l_i   = lse_i − (1 − ε)·z_{i,y_i} − (ε/V)·Σ_c z_ic,   0 for ignored rows
 *   dz_ic = g_i·(exp(z_ic − lse_i) − ε/V − (1 − ε)·[c = y_i]),   0 for ignored rows,
 *   g_i   = gradOutput/n ('mean') | gradOutput ('sum') | gradOutput_i ('none')
 *
 * dz overwrites z in place. Labels are int64 (read as two i32 words; a value outside i32 counts as
 * invalid) or int32; a label that is neither ignore_index nor in [0, V) is invalid: its row is
 * treated as ignored and counted in stats[1] so the caller can report it.
 */
import type { Program } from '../../../src/webgpu/program.js';
import { dispatch1d } from '../../../src/webgpu/program.js';
import { reduceArgs, reductionWgsl } from '../../../src/webgpu/reduce.js';

const WG = 256;
export type LabelType = 'int64' | 'int32';
export type GradMode = 'none' | 'scalar' | 'rows';

/** WGSL: `fn label_at(i) -> vec2<i32>` = (label, 1 if valid in i32 range else 0). */
function labelFn(labelType: LabelType): string {
  return labelType === 'int64'
    ? `fn label_at(i: u32) -> vec2<i32> {
  let lo = labels[2u * i]; let hi = labels[2u * i + 1u];
  return vec2<i32>(lo, select(0, 1, hi == select(0, -1, lo < 0)));
}`
    : 'fn label_at(i: u32) -> vec2<i32> { return vec2<i32>(labels[i], 1); }';
}

/** stats[0] = #labels ≠ ignore_index that are valid, stats[1] = #invalid labels. One workgroup. */
export function countProgram(sg: boolean, labelType: LabelType, n: number, v: number, ignoreIndex: number): Program {
  return {
    name: 'flce_count',
    cacheKey: labelType,
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: [1, 1, 1],
    uniforms: [
      { name: 'n', type: 'u32', value: n },
      { name: 'V', type: 'i32', value: v },
      { name: 'ignore', type: 'i32', value: ignoreIndex },
    ],
    bindings: [
      { name: 'labels', access: 'read', type: 'i32' },
      { name: 'stats', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: `${reductionWgsl(WG, sg)}\n${labelFn(labelType)}`,
      main: `
  var good = 0.0; var bad = 0.0;
  for (var i = lidx; i < u.n; i += ${WG}u) {
    let y = label_at(i);
    if (y.y == 1 && y.x == u.ignore) { continue; }
    if (y.y == 1 && y.x >= 0 && y.x < u.V) { good += 1.0; } else { bad += 1.0; }
  }
  let g = wg_sum(good, ${reduceArgs(sg)});
  let b = wg_sum(bad, ${reduceArgs(sg)});
  if (lidx == 0u) { stats[0] = g; stats[1] = b; }`,
    }),
  };
}

export interface RowArgs {
  sg: boolean;
  labelType: LabelType;
  hasBias: boolean;
  /** Write dz in place (training) or only the losses (evaluation). */
  grads: boolean;
  gradMode: GradMode;
  mean: boolean;
  rows: number;
  row0: number;
  v: number;
  ignoreIndex: number;
  labelSmoothing: number;
  /**
   * Precision 'f16': dz without its scalar factor (gradOut[0] / n), which `gradScaleProgram`
   * applies after the GEMMs; a per-row gradOut ('rows') stays in dz.
   */
  unscaled?: boolean;
}

/**
 * One workgroup per chunk row: log-sum-exp, the row loss into rowLoss[row0 + r] and, with grads,
 * dz in place of z. Bindings: z, [bias], labels, stats, [gradOut], rowLoss.
 */
export function rowProgram(a: RowArgs): Program {
  const bindings: Program['bindings'] = [
    { name: 'z', access: a.grads ? 'read_write' : 'read', type: 'f32' },
    ...(a.hasBias ? [{ name: 'bias', access: 'read' as const, type: 'f32' as const }] : []),
    { name: 'labels', access: 'read', type: 'i32' },
    { name: 'stats', access: 'read', type: 'f32' },
    ...(a.grads && a.gradMode !== 'none' ? [{ name: 'gradOut', access: 'read' as const, type: 'f32' as const }] : []),
    { name: 'rowLoss', access: 'read_write', type: 'f32' },
  ];
  const zAt = (j: string) => (a.hasBias ? `(z[zoff + ${j}] + bias[${j}])` : `z[zoff + ${j}]`);
  const g = a.gradMode === 'rows' ? 'gradOut[gr]' : a.gradMode === 'scalar' && !a.unscaled ? 'gradOut[0]' : '1.0';
  const perCount = a.mean && !a.unscaled ? ' / stats[0]' : '';
  return {
    name: 'flce_rows',
    cacheKey: `f32;${a.labelType};bias=${+a.hasBias};grads=${+a.grads};g=${a.gradMode};mean=${+a.mean}${a.unscaled ? ';unscaled=1' : ''}`,
    workgroupSize: [WG],
    subgroups: a.sg,
    dispatch: dispatch1d(a.rows),
    uniforms: [
      { name: 'rows', type: 'u32', value: a.rows },
      { name: 'row0', type: 'u32', value: a.row0 },
      { name: 'V', type: 'u32', value: a.v },
      { name: 'ignore', type: 'i32', value: a.ignoreIndex },
      { name: 'eps', type: 'f32', value: a.labelSmoothing },
    ],
    bindings,
    source: () => ({
      decls: `${reductionWgsl(WG, a.sg)}\n${labelFn(a.labelType)}`,
      main: `
  let r = flatWorkgroup(wid, nwg);
  if (r >= u.rows) { return; }
  let gr = u.row0 + r;
  let zoff = r * u.V;
  let yl = label_at(gr);
  let valid = yl.y == 1 && yl.x != u.ignore && yl.x >= 0 && u32(yl.x) < u.V;
  let y = select(0u, u32(yl.x), valid);
  let zy = ${zAt('y')};  // read before any invocation overwrites z (the reductions below are barriers)
  var m = -3.402823e38; var s = 0.0; var zs = 0.0;
  for (var j = lidx; j < u.V; j += ${WG}u) {
    let zj = ${zAt('j')};
    zs += zj;
    if (zj > m) { s = s * exp(m - zj) + 1.0; m = zj; } else { s += exp(zj - m); }
  }
  let mx = wg_max(m, ${reduceArgs(a.sg)});
  let lse = mx + log(wg_sum(s * exp(m - mx), ${reduceArgs(a.sg)}));
  let zsum = wg_sum(zs, ${reduceArgs(a.sg)});
  let loss = lse - (1.0 - u.eps) * zy - u.eps * zsum / f32(u.V);
  if (lidx == 0u) { rowLoss[gr] = select(0.0, loss, valid); }${a.grads ? `
  let scale = select(0.0, ${g}${perCount}, valid);
  let smoothing = u.eps / f32(u.V);
  for (var j = lidx; j < u.V; j += ${WG}u) {
    let p = exp(${zAt('j')} - lse);
    z[zoff + j] = scale * (p - smoothing - select(0.0, 1.0 - u.eps, j == y));
  }` : ''}`,
    }),
  };
}

/** gradBias[c] (+)= Σ_r dz[r, c] over one chunk; one invocation per column. */
export function biasGradProgram(rows: number, v: number, accumulate: boolean): Program {
  return {
    name: 'flce_bias_grad',
    cacheKey: `f32;acc=${+accumulate}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(v / WG)),
    uniforms: [
      { name: 'rows', type: 'u32', value: rows },
      { name: 'V', type: 'u32', value: v },
    ],
    bindings: [
      { name: 'dz', access: 'read', type: 'f32' },
      { name: 'db', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      main: `
  let c = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (c >= u.V) { return; }
  var s = 0.0;
  for (var r = 0u; r < u.rows; r++) { s += dz[r * u.V + c]; }
  ${accumulate ? 'db[c] += s;' : 'db[c] = s;'}`,
    }),
  };
}

export type ScaleMode = 'inPlace' | 'add';

/**
 * The scalar factor f = g / stats[0] ('mean'; 0 when no row counts) or g ('sum'), g = gradOut[0]
 * (`gradOut`) or 1, applied after the GEMMs under precision 'f16' (their operand holds dz without
 * it: dz / n underflows half): y = f·y ('inPlace') or y += f·x ('add'), over
 * `count` elements. Bindings: stats, [gradOut], [x], y.
 */
export function gradScaleProgram(count: number, mean: boolean, gradOut: boolean, mode: ScaleMode): Program {
  const g = gradOut ? 'gradOut[0]' : '1.0';
  const f = mean ? `select(0.0, ${g} / stats[0], stats[0] > 0.0)` : g;
  return {
    name: 'flce_grad_scale',
    cacheKey: `f32;mean=${+mean};g=${+gradOut};${mode}`,
    workgroupSize: [WG],
    dispatch: dispatch1d(Math.ceil(count / WG)),
    uniforms: [{ name: 'count', type: 'u32', value: count }],
    bindings: [
      { name: 'stats', access: 'read', type: 'f32' },
      ...(gradOut ? [{ name: 'gradOut', access: 'read' as const, type: 'f32' as const }] : []),
      ...(mode === 'add' ? [{ name: 'x', access: 'read' as const, type: 'f32' as const }] : []),
      { name: 'y', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      main: `
  let i = flatWorkgroup(wid, nwg) * ${WG}u + lidx;
  if (i >= u.count) { return; }
  let f = ${f};
  ${mode === 'inPlace' ? 'y[i] = f * y[i];' : 'y[i] = y[i] + f * x[i];'}`,
    }),
  };
}

/** loss[0] = Σ rowLoss / stats[0] ('mean'; NaN when every row is ignored) or Σ rowLoss ('sum'). */
export function lossProgram(sg: boolean, n: number, mean: boolean): Program {
  return {
    name: 'flce_loss',
    cacheKey: `f32;mean=${+mean}`,
    workgroupSize: [WG],
    subgroups: sg,
    dispatch: [1, 1, 1],
    uniforms: [
      { name: 'n', type: 'u32', value: n },
      { name: 'nanBits', type: 'u32', value: 0x7fc00000 }, // a NaN (WGSL constants cannot be NaN)
    ],
    bindings: [
      { name: 'rowLoss', access: 'read', type: 'f32' },
      { name: 'stats', access: 'read', type: 'f32' },
      { name: 'loss', access: 'read_write', type: 'f32' },
    ],
    source: () => ({
      decls: reductionWgsl(WG, sg),
      main: `
  var s = 0.0;
  for (var i = lidx; i < u.n; i += ${WG}u) { s += rowLoss[i]; }
  let t = wg_sum(s, ${reduceArgs(sg)});
  if (lidx == 0u) {
    ${mean ? 'loss[0] = select(bitcast<f32>(u.nanBits), t / stats[0], stats[0] > 0.0);' : 'loss[0] = t;'}
  }`,
    }),
  };
}
