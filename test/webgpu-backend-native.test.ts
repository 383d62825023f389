/**
 * The webgpu backend's 'native' policy for RMSNorm and RoPE: their forward nodes run as ONNX
 * RMSNormalization-23 / RotaryEmbedding-23 inside the ORT segments (passes/lower-to-onnx-23.ts).
 * The --kernels syntax, the graph the backend runs (no forward fused node left, no extra segment,
 * the user's graph untouched), ORT's placement of the new nodes (on the GPU, and no node moved to
 * the CPU by the opset raise), and the tiny Qwen2 training with the cpu backend's losses.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { describe, expect, it } from 'vitest';
import { TINY } from '../models/config.js';
import { buildQwen2 } from '../models/qwen2.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { saveBytes } from '../src/onnx/io.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { formatKernels, parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { gpuEnv } from './webgpu-helpers.js';

const env = await gpuEnv();
const NATIVE = parseKernels('default,rmsnorm=native,rope=native');
const SHAPE = { batch: 2, seq: 32 };
const count = (nodes: { opType: string }[], op: string) => nodes.filter((n) => n.opType === op).length;

describe("--kernels with 'native'", () => {
  it('per-op choices on top of all/none/default; the old lists unchanged; formatKernels reads back', () => {
    expect(NATIVE).toEqual({ flce: 'kernel', rmsNorm: 'native', swiglu: 'kernel', rope: 'native', mlp: 'kernel', attn: 'kernel', linear: 'kernel', glue: 'kernel' });
    expect(parseKernels('flce,swiglu,mlp,linear,rmsnorm,rope,attn,glue')).toEqual(parseKernels('default'));
    expect(parseKernels('default')).toEqual(parseKernels('all'));
    expect(parseKernels('flce,swiglu')).toEqual({ ...parseKernels('none'), flce: 'kernel', swiglu: 'kernel' });
    expect(parseKernels('all,rope=ort')).toEqual({ flce: 'kernel', rmsNorm: 'kernel', swiglu: 'kernel', rope: 'ort', mlp: 'kernel', attn: 'kernel', linear: 'kernel', glue: 'kernel' });
    expect(parseKernels('none')).toEqual({ flce: 'ort', rmsNorm: 'ort', swiglu: 'ort', rope: 'ort', mlp: 'ort', attn: 'ort', linear: 'ort', glue: 'ort' });
    for (const p of [NATIVE, parseKernels('all'), parseKernels('none'), parseKernels('rope=native')]) expect(parseKernels(formatKernels(p))).toEqual(p);
    expect(formatKernels(NATIVE)).toBe('flce,swiglu,mlp,attn,linear,glue,rmsnorm=native,rope=native');
    expect(() => parseKernels('flce=native')).toThrow(/--kernels: 'flce=native': only rmsnorm and rope can run as 'native'/);
    expect(() => parseKernels('rope=fast')).toThrow(/--kernels: 'rope=fast': unknown choice 'fast'/);
    expect(() => parseKernels('layernorm=native')).toThrow(/--kernels: unknown op 'layernorm'/);
  });
});

describe('the tiny Qwen2 step under rmsnorm=native, rope=native', () => {
  it('forward RMSNorm/RoPE become RMSNormalization/RotaryEmbedding (opset 23 in the copy only); backward nodes stay; no extra ORT segment', () => {
    const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
    const ort = webgpuGraph(p.train, SHAPE);
    const native = webgpuGraph(p.train, SHAPE, NATIVE);
    const L = TINY.num_hidden_layers;
    expect(count(native.graph.nodes, 'RMSNormalization')).toBe(count(ort.graph.nodes, 'RMSNorm'));
    expect(count(native.graph.nodes, 'RMSNormalization')).toBeGreaterThanOrEqual(2 * L + 1);
    expect(count(native.graph.nodes, 'RotaryEmbedding')).toBe(2 * L);
    expect(count(native.graph.nodes, 'RMSNorm') + count(native.graph.nodes, 'RoPE')).toBe(0);
    expect(count(native.graph.nodes, 'RMSNormGrad')).toBe(2 * L + 1);
    expect(count(native.graph.nodes, 'RoPEGrad')).toBe(2 * L);
    expect(native.opset('')).toBe(23);
    for (const f of native.functions) expect(f.opsetImports.get(''), f.name).toBe(23);
    expect(p.train.opset('')).toBe(20);
    expect(ort.opset('')).toBe(20);
    // Same stages as the default policy with RMSNorm and RoPE run by ORT as bodies: the native ops add none.
    const a = splitStages(ort, parseKernels('default,rmsnorm=ort,rope=ort'), FUSED_OPS)!;
    const b = splitStages(native, NATIVE, FUSED_OPS)!;
    expect(b.segments.length).toBe(a.segments.length);
    expect(b.plan.steps.length).toBe(a.plan.steps.length);
    for (const seg of b.segments) expect(seg.opset(''), 'segment opset').toBe(23);
  });
});

/** Nodes per EP, by op type, from ORT's verbose log (session_state.cc VerifyEachNodeIsAssignedToAnEp). */
function placement(log: string): Record<string, Record<string, number>> {
  const byEp: Record<string, Record<string, number>> = {};
  let ep: string | undefined;
  const tag = 'VerifyEachNodeIsAssignedToAnEp]';
  for (const line of log.split('\n')) {
    const i = line.indexOf(tag);
    if (i < 0) continue;
    const text = line.slice(i + tag.length);
    const head = /Node\(s\) placed on \[(\w+)\]/.exec(text);
    if (head) ep = head[1].replace('ExecutionProvider', '');
    const node = /^\s+(\S+) \((.*)\)\s*$/.exec(text);
    if (head || !node || !ep) continue;
    byEp[ep] ??= {};
    byEp[ep][node[1]] = (byEp[ep][node[1]] ?? 0) + 1;
  }
  return byEp;
}

/** Placement of a whole step graph by a child process (ORT-web's log goes to its stderr, here a file). */
function placeInChild(bytes: Uint8Array): Record<string, Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-placement-'));
  try {
    const model = path.join(dir, 'step.onnx');
    fs.writeFileSync(model, bytes);
    const fd = fs.openSync(path.join(dir, 'stderr.log'), 'w');
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.resolve('test/webgpu-placement-child.ts'), model], { stdio: ['ignore', 'ignore', fd], timeout: 300_000 });
    fs.closeSync(fd);
    const log = fs.readFileSync(path.join(dir, 'stderr.log'), 'utf8');
    if (r.status !== 0) throw new Error(`placement child exited ${r.status}: ${log.split('\n').filter((l) => /error/i.test(l)).slice(-3).join(' | ')}`);
    return placement(log);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!env.ctx)('webgpu backend, rmsnorm and rope native (dawn.node)', () => {
  it('ORT places every RMSNormalization and RotaryEmbedding on WebGPU; the opset raise moves no node to the CPU', () => {
    const p = prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, target: 'webgpu' });
    // One session for the whole step (every fused op in ORT), so every node is placed.
    const ort = placeInChild(saveBytes(webgpuGraph(p.train, SHAPE, parseKernels('none'))));
    const native = placeInChild(saveBytes(webgpuGraph(p.train, SHAPE, parseKernels('none,rmsnorm=native,rope=native'))));
    console.log(`CPU nodes, ort: ${JSON.stringify(ort.CPU)}; native: ${JSON.stringify(native.CPU)}; native on WebGPU: RMSNormalization ${native.WebGpu?.RMSNormalization}, RotaryEmbedding ${native.WebGpu?.RotaryEmbedding}; Memcpy ${native.WebGpu?.MemcpyFromHost}/${native.WebGpu?.MemcpyToHost} (ort ${ort.WebGpu?.MemcpyFromHost}/${ort.WebGpu?.MemcpyToHost})`);
    expect(native.WebGpu?.RMSNormalization).toBeGreaterThan(0);
    expect(native.WebGpu?.RotaryEmbedding).toBe(2 * TINY.num_hidden_layers);
    expect(native.CPU?.RMSNormalization).toBeUndefined();
    expect(native.CPU?.RotaryEmbedding).toBeUndefined();
    expect(native.CPU).toEqual(ort.CPU);
    expect(native.WebGpu?.MemcpyFromHost).toBe(ort.WebGpu?.MemcpyFromHost);
    expect(native.WebGpu?.MemcpyToHost).toBe(ort.WebGpu?.MemcpyToHost);
  });

  it('trains the tiny Qwen2 with the cpu losses within 1e-4 (5 steps); step times ort vs native', async () => {
    const tok = await getTokenizer('bytes');
    const text = mobyDick().slice(0, 100_000);
    const base: TrainOptions = { steps: 5, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, warmup: 2 };
    const model = () => buildQwen2(TINY, { seed: 1 });
    const native = await runTraining(model(), text, tok, { ...base, backend: 'webgpu', kernels: 'default,rmsnorm=native,rope=native' });
    const ort = await runTraining(model(), text, tok, { ...base, backend: 'webgpu', kernels: 'default' });
    const cpu = await runTraining(model(), text, tok, { ...base, backend: 'cpu' });
    const deltas = native.map((r, i) => Math.abs(r.loss - cpu[i].loss));
    const ms = (rs: { ms: number }[]) => rs.map((r) => r.ms.toFixed(0)).join(' ');
    console.log(`native vs cpu |Δloss| per step: ${deltas.map((d) => d.toExponential(1)).join(' ')}`);
    console.log(`SwiftShader ms/step (indicative): default (rmsnorm, rope in ORT bodies) ${ms(ort)}; rmsnorm=native,rope=native ${ms(native)}`);
    expect(native).toHaveLength(5);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    for (const [i, r] of ort.entries()) expect(Math.abs(r.loss - native[i].loss)).toBeLessThan(1e-4);
    expect(native[4].loss).toBeLessThan(native[0].loss);
  });
});
