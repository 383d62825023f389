/// <reference types="@webgpu/types" />
/**
 * CausalAttention WGSL kernels, flash-attention style (math in ../schema.ts and ../grad-schema.ts;
 * Dao et al., "FlashAttention", arXiv:2205.14135, algorithms 1 and 2). fp32; q, o, do [B, Hq, T, D],
 * k, v [B, Hkv, T, D], lse [B, Hq, T]; query head h reads kv head ⌊h / g⌋, g = Hq / Hkv.
 *
 *   forward:   a workgroup per (block of 64 query rows, h, b), a thread per row: key/value tiles
 *              up to the block's last row go through workgroup memory; each row keeps its running
 *              max m, sum l and o accumulator (online softmax, rescaled once per tile); writes
 *              o = acc / l and lse = m + log l.
 *   backward:  δ = rowsum(do·o) (a thread per row); dq: a thread per query row, loop over key
 *              tiles ≤ the row, p = exp(s − lse), ds = p·(do·v − δ), dq += ds·k; dk, dv: a thread
 *              per key row of kv head kh, loop over the g query heads of its group and their query
 *              tiles ≥ the block's first key, dv += p·do, dk += ds·q (the group sum inside the
 *              kernel: no atomics). Nothing [T, T] is ever stored.
 *
 * D ≤ 128. Rows live in per-thread arrays of DMAX ∈ {32, 64, 128} floats (the smallest ≥ D, part of
 * the cache key) as DMAX/4 vec4s, zero past D, and tiles hold rows the same way, so that every inner
 * loop is DMAX/4 vec4 dot products or FMAs with a constant trip count (unrollable: the arrays can
 * stay in registers; one workgroup-memory read per 4 FMAs). A tile holds TILE = 2048 / DMAX rows: a
 * pair of tiles is the 16 KiB of workgroup memory every WebGPU device offers.
 */
import { fail } from '../../../src/errors.js';
import type { GpuContext } from '../../../src/webgpu/context.js';
import type { BindingDecl, Program, Uniform } from '../../../src/webgpu/program.js';
import { checkBuffer, checkDims, checkU32 } from '../../../src/webgpu/validate.js';
import type { AttnDims } from '../schema.js';
export type { AttnDims };

const WG = 64;
/** float32's lowest finite value: the running max before any key. */
const LOWEST = '-3.4028234663852886e38';

function dmaxOf(d: number): number {
  return d <= 32 ? 32 : d <= 64 ? 64 : 128;
}

function uniforms(a: AttnDims): Uniform[] {
  return [
    { name: 'hq', type: 'u32', value: a.hq },
    { name: 'hkv', type: 'u32', value: a.hkv },
    { name: 'g', type: 'u32', value: a.hq / a.hkv },
    { name: 't', type: 'u32', value: a.t },
    { name: 'd', type: 'u32', value: a.d },
    { name: 'scale', type: 'f32', value: a.scale },
  ];
}

const rd = (name: string): BindingDecl => ({ name, access: 'read', type: 'f32' });
const rw = (name: string): BindingDecl => ({ name, access: 'read_write', type: 'f32' });

/** A program over blocks of 64 rows: dispatch (⌈T/64⌉, heads, B). */
function program(name: string, a: AttnDims, heads: number, bindings: BindingDecl[], decls: string, main: string): Program {
  const dmax = dmaxOf(a.d);
  const tile = 2048 / dmax;
  return {
    name,
    cacheKey: `f32;dmax=${dmax}`,
    workgroupSize: [WG],
    dispatch: [Math.ceil(a.t / WG), heads, a.b],
    uniforms: uniforms(a),
    bindings,
    source: () => {
      const fill = (x: string) => x.replaceAll('DV', `${dmax / 4}u`).replaceAll('TILE', `${tile}u`);
      return { decls: fill(decls), main: fill(main) };
    },
  };
}

/**
 * Two workgroup tiles of TILE rows (DV = DMAX/4 vec4s each, zero past D), filled cooperatively from
 * rows r0.. of `a` and `b` at `base`; `n` = the rows present.
 */
const TILES = `
var<workgroup> tA: array<vec4<f32>, 512>;
var<workgroup> tB: array<vec4<f32>, 512>;`;
const load = (a: string, b: string, base: string, r0: string) => `
    let n = min(TILE, u.t - ${r0});
    for (var i = lidx; i < n * DV; i += ${WG}u) {
      let e0 = (i % DV) * 4u; let src = ${base} + (${r0} + i / DV) * u.d + e0;
      var x = vec4<f32>(0.0); var y = vec4<f32>(0.0);
      for (var c = 0u; c < 4u; c++) { if (e0 + c < u.d) { x[c] = ${a}[src + c]; y[c] = ${b}[src + c]; } }
      tA[i] = x; tB[i] = y;
    }
    workgroupBarrier();`;

const FORWARD = `
  let bi = wid.z; let h = wid.y; let row = wid.x * ${WG}u + lidx; let D = u.d;
  let live = row < u.t;
  let qb = ((bi * u.hq + h) * u.t + row) * D;
  let kvb = (bi * u.hkv + h / u.g) * u.t * D;
  var qr: array<vec4<f32>, DV>; var acc: array<vec4<f32>, DV>;
  if (live) { for (var e = 0u; e < D; e++) { qr[e / 4u][e % 4u] = q[qb + e] * u.scale; } }
  var m = ${LOWEST}; var l = 0.0;
  var sc: array<f32, TILE>;
  let last = min(wid.x * ${WG}u + ${WG}u, u.t);
  for (var kb = 0u; kb < last; kb += TILE) {${load('k', 'v', 'kvb', 'kb')}
    if (live && kb <= row) {
      let cnt = min(n, row - kb + 1u);
      var bm = m;
      for (var j = 0u; j < cnt; j++) {
        var s = 0.0;
        for (var e = 0u; e < DV; e++) { s += dot(qr[e], tA[j * DV + e]); }
        sc[j] = s; bm = max(bm, s);
      }
      let corr = exp(m - bm);
      l *= corr; m = bm;
      for (var e = 0u; e < DV; e++) { acc[e] *= corr; }
      for (var j = 0u; j < cnt; j++) {
        let p = exp(sc[j] - m);
        l += p;
        for (var e = 0u; e < DV; e++) { acc[e] += p * tB[j * DV + e]; }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = 1.0 / l;
    for (var e = 0u; e < D; e++) { o[qb + e] = acc[e / 4u][e % 4u] * inv; }
    lse[(bi * u.hq + h) * u.t + row] = m + log(l);
  }`;

const DELTA = `
  let row = (wid.z * u.hq + wid.y) * u.t + wid.x * ${WG}u + lidx;
  if (wid.x * ${WG}u + lidx >= u.t) { return; }
  var s = 0.0;
  for (var e = 0u; e < u.d; e++) { s += dout[row * u.d + e] * o[row * u.d + e]; }
  delta[row] = s;`;

const DQ = `
  let bi = wid.z; let h = wid.y; let row = wid.x * ${WG}u + lidx; let D = u.d;
  let live = row < u.t;
  let r = (bi * u.hq + h) * u.t + row;
  let qb = r * D;
  let kvb = (bi * u.hkv + h / u.g) * u.t * D;
  var qr: array<vec4<f32>, DV>; var dor: array<vec4<f32>, DV>; var acc: array<vec4<f32>, DV>;
  var lr = 0.0; var dl = 0.0;
  if (live) {
    for (var e = 0u; e < D; e++) { qr[e / 4u][e % 4u] = q[qb + e] * u.scale; dor[e / 4u][e % 4u] = dout[qb + e]; }
    lr = lse[r]; dl = delta[r];
  }
  let last = min(wid.x * ${WG}u + ${WG}u, u.t);
  for (var kb = 0u; kb < last; kb += TILE) {${load('k', 'v', 'kvb', 'kb')}
    if (live && kb <= row) {
      let cnt = min(n, row - kb + 1u);
      for (var j = 0u; j < cnt; j++) {
        var s = 0.0; var dp = 0.0;
        for (var e = 0u; e < DV; e++) { s += dot(qr[e], tA[j * DV + e]); dp += dot(dor[e], tB[j * DV + e]); }
        let ds = exp(s - lr) * (dp - dl);
        for (var e = 0u; e < DV; e++) { acc[e] += ds * tA[j * DV + e]; }
      }
    }
    workgroupBarrier();
  }
  if (live) { for (var e = 0u; e < D; e++) { dq[qb + e] = acc[e / 4u][e % 4u] * u.scale; } }`;

const DKV = `
  let bi = wid.z; let kh = wid.y; let key = wid.x * ${WG}u + lidx; let D = u.d;
  let live = key < u.t;
  let kb = ((bi * u.hkv + kh) * u.t + key) * D;
  var kr: array<vec4<f32>, DV>; var vr: array<vec4<f32>, DV>; var dkr: array<vec4<f32>, DV>; var dvr: array<vec4<f32>, DV>;
  if (live) { for (var e = 0u; e < D; e++) { kr[e / 4u][e % 4u] = k[kb + e] * u.scale; vr[e / 4u][e % 4u] = v[kb + e]; } }
  let first = wid.x * ${WG}u;
  for (var hh = 0u; hh < u.g; hh++) {
    let rows = (bi * u.hq + kh * u.g + hh) * u.t;
    let qbase = rows * D;
    for (var t0 = first; t0 < u.t; t0 += TILE) {${load('q', 'dout', 'qbase', 't0')}
      if (live) {
        for (var j = 0u; j < n; j++) {
          let t = t0 + j;
          if (t < key) { continue; }
          var s = 0.0; var dp = 0.0;
          for (var e = 0u; e < DV; e++) { s += dot(kr[e], tA[j * DV + e]); dp += dot(vr[e], tB[j * DV + e]); }
          let p = exp(s - lse[rows + t]);
          let ds = p * (dp - delta[rows + t]);
          for (var e = 0u; e < DV; e++) { dvr[e] += p * tB[j * DV + e]; dkr[e] += ds * tA[j * DV + e]; }
        }
      }
      workgroupBarrier();
    }
  }
  if (live) { for (var e = 0u; e < D; e++) { dk[kb + e] = dkr[e / 4u][e % 4u] * u.scale; dv[kb + e] = dvr[e / 4u][e % 4u]; } }`;

function check(k: string, a: AttnDims): void {
  checkDims(k, { b: a.b, hq: a.hq, hkv: a.hkv, t: a.t, d: a.d });
  if (a.hq % a.hkv) fail('usage', `${k}: query heads ${a.hq} are not a multiple of kv heads ${a.hkv}`);
  if (a.d > 128) fail('usage', `${k}: head size ${a.d} is above the kernels' 128`);
  if (!(a.scale > 0) || !Number.isFinite(a.scale)) fail('usage', `${k}: scale ${a.scale} must be a finite number > 0`);
  checkU32(k, 'q', a.b * a.hq * a.t * a.d);
}

export interface AttnForwardArgs extends AttnDims {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
}

/** o [B, Hq, T, D] and lse [B, Hq, T] (new buffers). */
export function causalAttentionForward(ctx: GpuContext, a: AttnForwardArgs): { o: GPUBuffer; lse: GPUBuffer } {
  const k = 'CausalAttention';
  check(k, a);
  const nq = a.b * a.hq * a.t * a.d, nkv = a.b * a.hkv * a.t * a.d;
  checkBuffer(k, 'q', a.q, nq);
  checkBuffer(k, 'k', a.k, nkv);
  checkBuffer(k, 'v', a.v, nkv);
  const o = ctx.buffer('attn.o', nq * 4), lse = ctx.buffer('attn.lse', a.b * a.hq * a.t * 4);
  ctx.run(program('causal_attention', a, a.hq, [rd('q'), rd('k'), rd('v'), rw('o'), rw('lse')], TILES, FORWARD), [a.q, a.k, a.v, o, lse]);
  return { o, lse };
}

export interface AttnBackwardArgs extends AttnForwardArgs {
  o: GPUBuffer;
  lse: GPUBuffer;
  dout: GPUBuffer;
}

/** dq [B, Hq, T, D], dk and dv [B, Hkv, T, D] (new buffers); δ is a temporary. */
export function causalAttentionBackward(ctx: GpuContext, a: AttnBackwardArgs): { dq: GPUBuffer; dk: GPUBuffer; dv: GPUBuffer } {
  const k = 'CausalAttentionGrad';
  check(k, a);
  const nq = a.b * a.hq * a.t * a.d, nkv = a.b * a.hkv * a.t * a.d, rows = a.b * a.hq * a.t;
  checkBuffer(k, 'q', a.q, nq);
  checkBuffer(k, 'k', a.k, nkv);
  checkBuffer(k, 'v', a.v, nkv);
  checkBuffer(k, 'o', a.o, nq);
  checkBuffer(k, 'lse', a.lse, rows);
  checkBuffer(k, 'do', a.dout, nq);
  const delta = ctx.temp('attn.delta', rows * 4);
  ctx.run(program('causal_attention_delta', a, a.hq, [rd('dout'), rd('o'), rw('delta')], '', DELTA), [a.dout, a.o, delta]);
  const dq = ctx.buffer('attn.dq', nq * 4), dk = ctx.buffer('attn.dk', nkv * 4), dv = ctx.buffer('attn.dv', nkv * 4);
  ctx.run(program('causal_attention_dq', a, a.hq, [rd('q'), rd('k'), rd('v'), rd('dout'), rd('lse'), rd('delta'), rw('dq')], TILES, DQ), [a.q, a.k, a.v, a.dout, a.lse, delta, dq]);
  ctx.run(program('causal_attention_dkv', a, a.hkv, [rd('q'), rd('k'), rd('v'), rd('dout'), rd('lse'), rd('delta'), rw('dk'), rw('dv')], TILES, DKV), [a.q, a.k, a.v, a.dout, a.lse, delta, dk, dv]);
  return { dq, dk, dv };
}
