/// <reference types="@webgpu/types" />
/**
 * Adapters from a kernel node of the stage plan (./segments.ts) to our WGSL kernels: dims come from
 * the runtime tensors, outputs are new 16-byte padded STORAGE buffers (ours), except RoPE(Grad),
 * which rotates in place: on the input itself when the runner says nothing reads it later, else on
 * a copy. Commands are only recorded here; the runner submits each kernel group.
 */
import { fail } from '../../errors.js';
import type { GpuContext } from '../../webgpu/context.js';
import { fusedLinearCrossEntropy } from '../../../custom-ops/fused-linear-cross-entropy/webgpu/flce.js';
import { rmsNormBackward, rmsNormForward } from '../../../custom-ops/rms-norm/webgpu/rms-norm.js';
import { ropeBackward, ropeForward } from '../../../custom-ops/rope/webgpu/rope.js';
import { swigluBackward, swigluForward } from '../../../custom-ops/swiglu/webgpu/swiglu.js';
import type { KernelCall } from './segments.js';

/** A value on the GPU: its buffer, dims and element type (ORT's names: 'float32', 'int64'). */
export interface GpuValue {
  buffer: GPUBuffer;
  dims: readonly number[];
  type: string;
}

export interface KernelOutputs {
  /** By the call's output order; undefined where the call has no output. */
  outputs: (GpuValue | undefined)[];
  /** Index of the input whose buffer became output 0 (in-place RoPE), if any. */
  reused?: number;
  /** Our buffers to destroy after the group's submit (kernel results nobody reads). */
  drop: GPUBuffer[];
}

const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const f32 = (buffer: GPUBuffer, dims: readonly number[]): GpuValue => ({ buffer, dims: [...dims], type: 'float32' });

/**
 * Record `call` on `ctx`. `inputs` by the call's input order; `mayReuse(i)`: input i is read by
 * nothing after this call (its buffer may be overwritten).
 */
export function runKernel(ctx: GpuContext, call: KernelCall, inputs: (GpuValue | undefined)[], mayReuse: (i: number) => boolean): KernelOutputs {
  const where = `${call.node} (our ${call.op} kernel)`;
  const need = (i: number, name: string, type = 'float32'): GpuValue => {
    const v = inputs[i] ?? fail('runtime', `${where}: input ${i} '${name}' is missing`);
    if (v.type !== type) fail('runtime', `${where}: input '${name}' is ${v.type}, expected ${type}`);
    return v;
  };
  const sameDims = (a: GpuValue, b: GpuValue, what: string) => {
    if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) fail('runtime', `${where}: ${what} [${a.dims}] and [${b.dims}] must have the same shape`);
  };
  const want = (i: number) => call.outputs[i] != null;
  const keep = (i: number, v: GpuValue, drop: GPUBuffer[]): GpuValue | undefined => {
    if (want(i)) return v;
    drop.push(v.buffer);
    return undefined;
  };
  const drop: GPUBuffer[] = [];
  switch (call.op) {
    case 'rmsNorm':
    case 'rmsNormGrad': {
      const back = call.op === 'rmsNormGrad';
      const x = need(back ? 1 : 0, 'x'), w = need(back ? 2 : 1, 'weight');
      const d = x.dims[x.dims.length - 1];
      if (!x.dims.length || w.dims.length !== 1 || w.dims[0] !== d) fail('runtime', `${where}: weight [${w.dims}] does not match the last dim of x [${x.dims}]`);
      const rows = count(x.dims) / d, eps = Number(call.attrs.epsilon);
      if (!back) {
        const rstd = ctx.temp('rmsnorm.rstd', rows * 4);
        const { y } = rmsNormForward(ctx, { x: x.buffer, weight: w.buffer, rows, d, eps, rstd });
        return { outputs: [f32(y, x.dims)], drop };
      }
      const dy = need(0, 'dy');
      sameDims(dy, x, 'dy and x');
      const r = rmsNormBackward(ctx, { x: x.buffer, weight: w.buffer, dy: dy.buffer, rows, d, eps });
      return { outputs: [keep(0, f32(r.dx, x.dims), drop), keep(1, f32(r.dWeight, w.dims), drop)], drop };
    }
    case 'swiglu': {
      const gate = need(0, 'gate'), up = need(1, 'up');
      sameDims(gate, up, 'gate and up');
      return { outputs: [f32(swigluForward(ctx, { gate: gate.buffer, up: up.buffer, n: count(gate.dims) }), gate.dims)], drop };
    }
    case 'swigluGrad': {
      const dy = need(0, 'dy'), gate = need(1, 'gate'), up = need(2, 'up');
      sameDims(gate, up, 'gate and up');
      sameDims(dy, gate, 'dy and gate');
      const r = swigluBackward(ctx, { gate: gate.buffer, up: up.buffer, dy: dy.buffer, n: count(gate.dims) });
      return { outputs: [keep(0, f32(r.dGate, gate.dims), drop), keep(1, f32(r.dUp, up.dims), drop)], drop };
    }
    case 'rope':
    case 'ropeGrad': {
      const x = need(0, call.op === 'rope' ? 'x' : 'dy'), cos = need(1, 'cos'), sin = need(2, 'sin');
      sameDims(cos, sin, 'cos and sin');
      if (x.dims.length !== 4 || cos.dims.length !== 4) fail('runtime', `${where}: x [${x.dims}] and cos [${cos.dims}] must be 4-D ([B, heads, S, D] and [B or 1, 1, S, D])`);
      const [b, heads, s, d] = x.dims;
      const [bc, one, cs, cd] = cos.dims;
      if (one !== 1 || cs !== s || cd !== d || (bc !== 1 && bc !== b)) fail('runtime', `${where}: cos [${cos.dims}] does not broadcast to x [${x.dims}]`);
      const inPlace = mayReuse(0);
      let y = x.buffer;
      if (!inPlace) {
        y = ctx.buffer(`${call.op}.y`, count(x.dims) * 4);
        ctx.copy(x.buffer, 0, y, 0, count(x.dims) * 4);
      }
      const args = { x: y, cos: cos.buffer, sin: sin.buffer, b, heads, s, d, bc, layout: 'bhsd' as const };
      if (call.op === 'rope') ropeForward(ctx, args);
      else ropeBackward(ctx, args);
      return { outputs: [f32(y, x.dims)], reused: inPlace ? 0 : undefined, drop };
    }
    case 'flce': {
      const hidden = need(0, 'hidden'), weight = need(1, 'weight');
      const labels = inputs[3] ?? fail('runtime', `${where}: input 3 'labels' is missing`);
      if (labels.type !== 'int64' && labels.type !== 'int32') fail('runtime', `${where}: labels are ${labels.type}, expected int64 or int32`);
      const bias = call.inputs[2] ? need(2, 'bias') : undefined;
      if (hidden.dims.length !== 2 || weight.dims.length !== 2 || hidden.dims[1] !== weight.dims[1])
        fail('runtime', `${where}: hidden [${hidden.dims}] and weight [${weight.dims}] must be [N, H] and [V, H]`);
      const [n, h] = hidden.dims;
      const v = weight.dims[0];
      if (count(labels.dims) !== n) fail('runtime', `${where}: ${count(labels.dims)} labels for ${n} rows`);
      const a = call.attrs;
      const r = fusedLinearCrossEntropy(ctx, {
        hidden: hidden.buffer, weight: weight.buffer, bias: bias?.buffer, labels: labels.buffer, labelType: labels.type === 'int64' ? 'int64' : 'int32',
        n, h, v, ignoreIndex: Number(a.ignoreIndex), labelSmoothing: Number(a.labelSmoothing), reduction: a.reduction as 'mean' | 'sum',
        chunkRows: Number(a.chunkRows) || undefined,
      });
      drop.push(r.stats);
      const grad = (i: number, buf: GPUBuffer | undefined, dims: readonly number[]) => (buf ? keep(i, f32(buf, dims), drop) : undefined);
      return {
        outputs: [keep(0, f32(r.loss, []), drop), grad(1, r.gradHidden, hidden.dims), grad(2, r.gradWeight, weight.dims), bias ? grad(3, r.gradBias, bias.dims) : undefined],
        drop,
      };
    }
    default:
      return fail('unsupported', `${where}: no kernel for '${(call as KernelCall).op}'`);
  }
}
