/**
 * Issue 12: the host cost of our own WebGPU dispatches — microseconds of host time per dispatch in
 * GpuContext.run and per kernel call, recorded on dawn.node (SwiftShader here; Dawn's host side is
 * the same code on a GPU), with a breakdown by phase (argument checks, pipeline lookup, uniforms,
 * bind group, pass calls, buffer creation, submit; the rest of a call is the kernel's own code:
 * validation, programs).
 *
 *   npx tsx bench/dispatch-host.ts [--iters 5] [--submit] [--max-elements N] [--json FILE]
 *
 * Scenarios, at the Qwen2-0.5B step's real sizes:
 * - flce: one FusedLinearCrossEntropy call with gradients, N = 8·512, H = 896, V = 151936 (the
 *   chunk loop), then one submit;
 * - adamw-early: the trainer's path without clipping: per parameter (290) its sum of squares and
 *   AdamW (src/runtime/webgpu/trainer.ts `apply`), a submit each (as the trainer did before issue
 *   12), then the norm's finalize; adamw-early-layer: the same with one submit per 12 tensors (a
 *   decoder layer's parameters: the runner now submits once for all gradients a segment finishes);
 * - adamw-clip: global-norm clipping over all 290 gradients, then AdamW over all, one submit.
 *
 * Recording only: without --submit the command buffers are finished and dropped (GpuContext.discard),
 * so no kernel has to run (SwiftShader could not run these sizes); --submit queues them (GPU
 * machine) and waits only after the timed iterations. --max-elements caps each optimizer tensor
 * (default: uncapped with a GPU, 65536 without: host cost does not depend on the size, and the
 * real sizes need 8 GB of buffers). Each scenario runs once to compile its pipelines, then --iters
 * times unprofiled (the totals), then --iters times with GpuContext.profile set (the breakdown).
 */
import fs from 'node:fs';
import { benchArgs, hasGpuDevice } from './cli-args.js';
import { fusedLinearCrossEntropy } from '../custom-ops/fused-linear-cross-entropy/webgpu/flce.js';
import { QWEN2_0_5B } from '../models/config.js';
import { qwen2Parameters } from '../models/weights.js';
import { adamw, writeStepScalars } from '../src/webgpu/adamw.js';
import { GpuContext, dispatchProfile, type DispatchProfile } from '../src/webgpu/context.js';
import { requestNodeDevice, useSwiftShaderIfPresent } from '../src/webgpu/dawn-node.js';
import { finalizeNorm, globalNorm, partialCount, STATS_FLOATS, sumSquares } from '../src/webgpu/grad-norm.js';

const opt = benchArgs();
const iters = Number(opt.iters ?? 5);
const submit = opt.submit === 'true';
const hasGpu = hasGpuDevice();
if (!hasGpu) useSwiftShaderIfPresent();
const maxElements = Number(opt['max-elements'] ?? (hasGpu ? Infinity : 65536));
const device = await requestNodeDevice();
const ctx = new GpuContext(device);
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;

interface Scenario {
  name: string;
  /** Kernel calls per iteration (the unit of "per call"). */
  calls: number;
  /** Record one iteration; returns the ms spent in submit/discard (also included in the total). */
  record(): number;
}

const flush = (): number => {
  const t = performance.now();
  if (submit) ctx.submit();
  else ctx.discard();
  return performance.now() - t;
};

function flceScenario(): Scenario {
  const n = 8 * 512, h = QWEN2_0_5B.hidden_size, v = QWEN2_0_5B.vocab_size;
  const hidden = ctx.buffer('hidden', n * h * 4), weight = ctx.buffer('weight', v * h * 4);
  const labels = ctx.upload('labels', new BigInt64Array(n).map((_, i) => BigInt((i * 7919) % v)));
  const out = { loss: ctx.buffer('loss', 4), stats: ctx.buffer('stats', 16), gradHidden: ctx.buffer('gradHidden', n * h * 4), gradWeight: ctx.buffer('gradWeight', v * h * 4) };
  return {
    name: `flce ${n}x${h}x${v}`,
    calls: 1,
    record() {
      fusedLinearCrossEntropy(ctx, { hidden, weight, labels, n, h, v, out });
      return flush();
    },
  };
}

interface OptTensor { param: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer; size: number; noDecay: boolean }

function optimizerTensors(): OptTensor[] {
  return qwen2Parameters(QWEN2_0_5B).map((p) => {
    const size = Math.min(maxElements, p.dims.reduce((a, b) => a * b, 1));
    const b = (what: string) => ctx.buffer(`${p.name}.${what}`, size * 4);
    return { param: b('value'), grad: b('grad'), m: b('m'), v: b('v'), size, noDecay: p.dims.length === 1 };
  });
}

function optimizerScenarios(): Scenario[] {
  const tensors = optimizerTensors();
  const count = tensors.reduce((a, t) => a + partialCount(t.size), 0);
  const partials = ctx.buffer('partials', count * 4), stats = ctx.buffer('stats', STATS_FLOATS * 4);
  let step = 0;
  const hp = () => ({ step: ++step, lr: 1e-4, weightDecay: 0.01 });
  const early = (name: string, perSubmit: number): Scenario => ({
    name: `${name} ${tensors.length} tensors`,
    calls: tensors.length,
    record() {
      const s = hp();
      writeStepScalars(device.queue, stats, s);
      let base = 0, ms = 0;
      tensors.forEach((t, i) => {
        base += sumSquares(ctx, { grad: t.grad, size: t.size }, partials, base);
        adamw(ctx, [t], s, { buffer: stats });
        if ((i + 1) % perSubmit === 0) ms += flush();
      });
      finalizeNorm(ctx, base, partials, stats, 0);
      return ms + flush();
    },
  });
  const clip: Scenario = {
    name: `adamw-clip ${tensors.length} tensors`,
    calls: 1,
    record() {
      // The trainer's path: the clip factor applied by AdamW as it reads each gradient.
      const s = hp();
      writeStepScalars(device.queue, stats, s);
      globalNorm(ctx, tensors.map((t) => ({ grad: t.grad, size: t.size })), partials, stats, 1);
      adamw(ctx, tensors, s, { buffer: stats, clip: true });
      return flush();
    },
  };
  return [early('adamw-early', 1), early('adamw-early-layer', 12), clip];
}

interface Result {
  scenario: string;
  calls: number;
  dispatchesPerIter: number;
  /** Means over the unprofiled iterations, µs. */
  usPerIter: number;
  usPerCall: number;
  usPerDispatch: number;
  usFlushPerIter: number;
  /** Profiled iterations: µs per dispatch by phase; `kernel` = the rest of recording (kernel code). */
  breakdownUsPerDispatch: Record<string, number>;
  submitsPerIter: number;
  usPerSubmit: number;
}

async function measure(s: Scenario): Promise<Result> {
  s.record();
  if (submit) await ctx.sync();
  const d0 = ctx.dispatches;
  let total = 0, flushMs = 0;
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    flushMs += s.record();
    total += performance.now() - t;
  }
  const dispatches = (ctx.dispatches - d0) / iters;
  if (submit) await ctx.sync();
  const prof: DispatchProfile = dispatchProfile();
  ctx.profile = prof;
  let profTotal = 0;
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    s.record();
    profTotal += performance.now() - t;
  }
  ctx.profile = undefined;
  if (submit) await ctx.sync();
  const us = (ms: number) => (1000 * ms) / iters / dispatches;
  const phases = { alloc: prof.alloc, check: prof.check, pipeline: prof.pipeline, uniforms: prof.uniforms, bindGroup: prof.bindGroup, pass: prof.pass };
  const inRun = Object.values(phases).reduce((a, b) => a + b, 0);
  const breakdown: Record<string, number> = Object.fromEntries(Object.entries(phases).map(([k, ms]) => [k, us(ms)]));
  breakdown.submit = us(prof.submit);
  breakdown.kernel = us(profTotal - inRun - prof.submit);
  breakdown.total = us(profTotal);
  return {
    scenario: s.name, calls: s.calls, dispatchesPerIter: dispatches,
    usPerIter: (1000 * total) / iters, usPerCall: (1000 * total) / iters / s.calls, usPerDispatch: (1000 * total) / iters / dispatches,
    usFlushPerIter: (1000 * flushMs) / iters,
    breakdownUsPerDispatch: breakdown, submitsPerIter: prof.submits / iters, usPerSubmit: prof.submits ? (1000 * prof.submit) / prof.submits : 0,
  };
}

const wanted = (opt.scenarios ?? 'flce,adamw-early,adamw-early-layer,adamw-clip').split(',');
const scenarios = [...(wanted.includes('flce') ? [flceScenario()] : []), ...optimizerScenarios().filter((s) => wanted.includes(s.name.split(' ')[0]))];
const results: Result[] = [];
for (const s of scenarios) results.push(await measure(s));

const round = (x: number) => Math.round(x * 10) / 10;
console.log(`device: ${info?.vendor ?? '?'} ${info?.architecture ?? ''} ${info?.description ?? ''}; ${submit ? 'record + submit' : 'record + discard (no GPU work)'}; iters ${iters}; optimizer tensors capped at ${maxElements} elements`);
console.log('| scenario | dispatches/iter | submits/iter | µs/call | µs/dispatch | alloc | check | pipeline | uniforms | bindGroup | pass | submit | kernel code | profiled total |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const b = r.breakdownUsPerDispatch;
  console.log(`| ${r.scenario} | ${r.dispatchesPerIter} | ${r.submitsPerIter} | ${round(r.usPerCall)} | ${round(r.usPerDispatch)} | ${[b.alloc, b.check, b.pipeline, b.uniforms, b.bindGroup, b.pass, b.submit, b.kernel, b.total].map(round).join(' | ')} |`);
}
const record = { device: info ? { vendor: info.vendor, architecture: info.architecture, description: info.description } : undefined, submit, iters, maxElements: String(maxElements), node: process.version, results };
if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(record, null, 2) + '\n');
