/**
 * Where onnxruntime-web's WebGPU EP runs the webgpu backend's training step: for each ORT segment
 * the backend runs (FLCE split: segment A and B; else the whole graph), which nodes ORT places on
 * the CPU EP (wasm) and how many Memcpy nodes it inserts, read from ORT's verbose log (session
 * option logSeverityLevel 0). The tiny Qwen2 with its
 * weights and the 0.5B structure (weights in /dev/null, never read: placement does not depend on
 * sizes). Optionally times training steps of the tiny model (SwiftShader here).
 *
 *   npx tsx bench/webgpu-placement.ts [--configs tiny,0.5b,file:model.onnx] [--variants fused,unfused,unfused-raw] [--shape 2x32]
 *                                     [--steps 20] [--out bench/results] [--tag NAME]
 *
 * Variants: 'fused' (default) = prepareTraining(.., { fuse: true, target: 'webgpu' }); 'unfused' =
 * { fuse: false, target: 'webgpu' } (the loss lowered for the GPU, passes/lower-softmax-cross-entropy);
 * 'unfused-raw' = the unfused graph as exported, loss op not lowered (what the webgpu target ran
 * before that pass). Each row also lists the CPU-placed nodes that read or write a tensor of V
 * (vocab) elements or more (shapes from our graph, by ORT's node name): none may be [N, V].
 *
 * Rows: 'dynamic' = the graph as the backend runs it without a batch shape; 'specialised BxT' =
 * with trainingSpec's shape (passes/specialize-shapes). Steps: the tiny model, both ways, with
 * per-step counts of dispatches, submits, writeBuffers and readbacks (ORT's and ours).
 *
 * Every session is created in a child process (ORT-web's log goes to that process's stderr).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRESETS, type Qwen2Config } from '../models/config.js';
import { buildQwen2, buildQwen2Structure } from '../models/qwen2.js';
import type { Model } from '../src/ir/graph.js';
import { loadBytes, loadFile } from '../src/onnx/io.js';
import { FUSED_INFER_RULES, FUSED_OPS } from '../custom-ops/registry.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { formatShape } from '../src/ir/types.js';
import { prepareTraining, trainingGraph } from '../src/runtime/session.js';
import { trainingSignature } from '../src/autodiff/index.js';
import { trainingSpec, type SpecShape } from '../src/runtime/webgpu/training-spec.js';

const SELF = fileURLToPath(import.meta.url);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

export interface Placement {
  segment: string;
  /** Nodes of the segment as we wrote it. */
  graphNodes: number;
  /** Nodes per EP after ORT's optimisations, by op type (Memcpy nodes included). */
  byEp: Record<string, Record<string, number>>;
  /** Names of the CPU EP's nodes (as ORT names them after its optimisations). */
  cpuNodes: string[];
  memcpyFromHost: number;
  memcpyToHost: number;
  /** CPU nodes reading or writing a tensor of at least V elements (or with a V-sized dim where shapes are symbolic): `op:name [shapes]`. */
  cpuLarge: string[];
  /** CPU nodes whose names ORT made (its own rewrites, inlined function bodies): not looked up, by op. */
  cpuUnresolved: Record<string, number>;
  error?: string;
}

export type Variant = 'fused' | 'unfused' | 'unfused-raw';

/** Node placement from ORT's verbose log (session_state.cc VerifyEachNodeIsAssignedToAnEp). */
export function parsePlacement(log: string): Pick<Placement, 'byEp' | 'cpuNodes' | 'memcpyFromHost' | 'memcpyToHost'> {
  const byEp: Record<string, Record<string, number>> = {};
  const cpuNodes: string[] = [];
  let ep: string | undefined;
  for (const line of log.split('\n')) {
    const i = line.indexOf('VerifyEachNodeIsAssignedToAnEp]');
    if (i < 0) continue;
    const text = line.slice(i + 'VerifyEachNodeIsAssignedToAnEp]'.length);
    const head = /Node\(s\) placed on \[(\w+)\]/.exec(text);
    if (head) {
      ep = head[1].replace('ExecutionProvider', '');
      byEp[ep] ??= {};
      continue;
    }
    const node = /^\s+(\S+) \((.*)\)\s*$/.exec(text);
    if (!node || !ep) continue;
    byEp[ep][node[1]] = (byEp[ep][node[1]] ?? 0) + 1;
    if (ep === 'CPU') cpuNodes.push(`${node[1]}:${node[2]}`);
  }
  const count = (op: string) => Object.values(byEp).reduce((s, c) => s + (c[op] ?? 0), 0);
  return { byEp, cpuNodes, memcpyFromHost: count('MemcpyFromHost'), memcpyToHost: count('MemcpyToHost') };
}


/** The training graph of a variant (trainingGraph reads no weights: initial values are empty arrays for the 0.5B). */
function prepareVariant(model: Model, variant: Variant, readWeights: boolean): { train: Model; initial: Map<string, Float32Array> } {
  const opts = { fuse: variant === 'fused', target: variant === 'unfused-raw' ? undefined : ('webgpu' as const) };
  if (readWeights && variant !== 'unfused-raw') return prepareTraining(model, opts as { fuse: boolean; target: 'webgpu' });
  const { train } = trainingGraph(model, opts);
  const sig = trainingSignature(train).parameters;
  if (!readWeights) return { train, initial: new Map(sig.map((p) => [p, new Float32Array(0)])) };
  const values = new Map(model.graph.initializers.map((v) => [v.name, v.initializer!]));
  return { train, initial: new Map(sig.map((p) => [p, values.get(p)!.toArray() as Float32Array])) };
}

/** The segments the webgpu backend runs for `config`, as ONNX bytes. */
function segments(configName: string, variant: Variant, shape: SpecShape | undefined): { name: string; bytes: Uint8Array; nodes: number }[] {
  // file:PATH — an exported model (e.g. a default-settings torch export), weights read
  const file = configName.startsWith('file:') ? configName.slice(5) : undefined;
  const config = PRESETS[configName];
  const tiny = configName === 'tiny' || !!file;
  const model = file ? loadFile(file) : tiny ? buildQwen2(config, { seed: 1 }) : buildQwen2Structure(config);
  const { train, initial } = prepareVariant(model, variant, tiny);
  const spec = trainingSpec(train, initial, {}, shape);
  const nodes = (b: Uint8Array) => loadBytes(b).graph.nodes.length;
  if (spec.stages) return spec.stages.segments.map((bytes, i) => ({ name: String.fromCharCode(65 + i), bytes, nodes: nodes(bytes) }));
  return [{ name: 'model', bytes: spec.model, nodes: nodes(spec.model) }];
}

/**
 * CPU nodes of `cpuNodes` ("op:name") with a tensor of >= `vocab` elements, by our graph's shapes;
 * nodes ORT named itself (not in our graph) are counted by op as unresolved.
 */
export function largeCpuNodes(bytes: Uint8Array, cpuNodes: string[], vocab: number): { large: string[]; unresolved: Record<string, number> } {
  const m = loadBytes(bytes);
  inferShapes(m, { rules: FUSED_INFER_RULES });
  const byName = new Map(m.graph.nodes.map((n) => [n.name, n]));
  const out: string[] = [];
  const unresolved: Record<string, number> = {};
  for (const entry of cpuNodes) {
    const [op, name] = [entry.slice(0, entry.indexOf(':')), entry.slice(entry.indexOf(':') + 1)];
    const n = byName.get(name);
    if (!n) {
      unresolved[op] = (unresolved[op] ?? 0) + 1;
      continue;
    }
    const shapes = [...n.inputs, ...n.outputs].filter((v) => v).map((v) => v!.tensorType?.shape);
    const large = shapes.some((sh) => {
      if (!sh) return false;
      if (sh.every((d) => typeof d === 'number')) return (sh as number[]).reduce((a, b) => a * b, 1) >= vocab;
      return sh.includes(vocab);
    });
    if (large) out.push(`${op}:${name} ${shapes.map((sh) => formatShape(sh)).join(' ')}`);
  }
  return { large: out, unresolved };
}

/** Child: create one webgpu session with verbose logging (stderr), then exit. */
async function childCreate(file: string): Promise<void> {
  const { nodeOrtWeb } = await import('../src/runtime/webgpu/ort-web-node.js');
  const { ort } = await nodeOrtWeb();
  ort.env.logLevel = 'verbose';
  const s = await ort.InferenceSession.create(new Uint8Array(fs.readFileSync(file)), {
    executionProviders: ['webgpu'], preferredOutputLocation: 'gpu-buffer', logSeverityLevel: 0, logVerbosityLevel: 0,
  } as never);
  await s.release();
  process.exit(0);
}

/** Child: ms per training step of the tiny model at B×T (webgpu backend, random ids). */
async function childSteps(b: number, t: number, steps: number, specialize: boolean, variant: Variant): Promise<void> {
  const { nodeOrtWeb } = await import('../src/runtime/webgpu/ort-web-node.js');
  const { WebGpuTrainer } = await import('../src/runtime/webgpu/trainer.js');
  const { rng } = await import('../src/random.js');
  const config = PRESETS.tiny;
  const p = prepareVariant(buildQwen2(config, { seed: 1 }), variant, true);
  const { ort } = await nodeOrtWeb();
  const trainer = await WebGpuTrainer.create(ort, trainingSpec(p.train, p.initial, {}, specialize ? { batch: b, seq: t } : undefined), {
    optimizer: { lr: 1e-3, weightDecay: 0.01, maxGradNorm: 1 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: steps },
  }, FUSED_OPS);
  const calls = countGpuCalls();
  const r = rng(7);
  const ms: number[] = [];
  const losses: number[] = [];
  const perStep: Record<string, number>[] = [];
  for (let s = 0; s < steps; s++) {
    const before = { ...calls };
    const ids = new BigInt64Array(b * t);
    for (let i = 0; i < ids.length; i++) ids[i] = BigInt(Math.floor(r() * config.vocab_size));
    const res = await trainer.train({ inputIds: ids, labels: ids.slice(), batch: b, seq: t });
    ms.push(res.ms);
    losses.push(res.loss);
    perStep.push(Object.fromEntries(Object.entries(calls).map(([k, n]) => [k, n - before[k]])));
  }
  await trainer.release();
  console.log('RESULT ' + JSON.stringify({ ms, losses, calls: perStep[perStep.length - 1] }));
  process.exit(0);
}

/** Counts of WebGPU calls (ORT's and ours) that cost per-call time: dispatches, submits, uploads, readbacks. */
function countGpuCalls(): Record<string, number> {
  const counts: Record<string, number> = { dispatches: 0, submits: 0, writeBuffers: 0, readbacks: 0 };
  const g = globalThis as unknown as Record<string, { prototype: Record<string, (...a: unknown[]) => unknown> }>;
  const wrap = (cls: string, method: string, key: string) => {
    const proto = g[cls].prototype;
    const orig = proto[method];
    proto[method] = function (this: unknown, ...a: unknown[]) {
      counts[key]++;
      return orig.apply(this, a);
    };
  };
  wrap('GPUComputePassEncoder', 'dispatchWorkgroups', 'dispatches');
  wrap('GPUQueue', 'submit', 'submits');
  wrap('GPUQueue', 'writeBuffer', 'writeBuffers');
  wrap('GPUBuffer', 'mapAsync', 'readbacks');
  return counts;
}

/** Run this script as a child; its stderr (ORT's verbose log) goes to a file: wasm's synchronous writes to a full pipe fail with EAGAIN. */
function spawnChild(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const errFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wgpu-placement-log-')), 'stderr.log');
  const fd = fs.openSync(errFile, 'w');
  try {
    const r = spawnSync(process.execPath, [...process.execArgv, SELF, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, timeout: 900_000, stdio: ['ignore', 'pipe', fd] });
    return { stdout: r.stdout ?? '', stderr: fs.readFileSync(errFile, 'utf8'), status: r.status };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(path.dirname(errFile), { recursive: true, force: true });
  }
}

function placementOf(configName: string, variant: Variant, shape: SpecShape | undefined, dir: string): Placement[] {
  return segments(configName, variant, shape).map(({ name, bytes, nodes }) => {
    const file = path.join(dir, `${configName.replace(/[^\w.-]/g, "_")}-${variant}-${name}.onnx`);
    fs.writeFileSync(file, bytes);
    const r = spawnChild(['--child-create', file]);
    const p = parsePlacement(r.stderr);
    const error = r.status === 0 ? undefined : (r.stderr.split('\n').filter((l) => /error/i.test(l)).pop() ?? `exit ${r.status}`).slice(0, 300);
    const { large, unresolved } = largeCpuNodes(bytes, p.cpuNodes, PRESETS[configName]?.vocab_size ?? 256);
    return { segment: name, graphNodes: nodes, ...p, cpuLarge: large, cpuUnresolved: unresolved, error };
  });
}

function table(rows: Placement[]): string {
  const out = ['| segment | nodes (ours) | ORT nodes on WebGPU | on CPU | MemcpyFromHost | MemcpyToHost | CPU nodes by op | CPU nodes with a tensor of >= V elements | CPU nodes named by ORT (not looked up) |', '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const sum = (c: Record<string, number> | undefined) => Object.values(c ?? {}).reduce((a, b) => a + b, 0);
    const cpu = Object.entries(r.byEp.CPU ?? {}).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(', ');
    out.push(`| ${r.segment} | ${r.graphNodes} | ${sum(r.byEp.WebGpu)} | ${sum(r.byEp.CPU)} | ${r.memcpyFromHost} | ${r.memcpyToHost} | ${r.error ? `ERROR ${r.error}` : cpu || '-'} | ${r.cpuLarge.join('; ') || 'none'} | ${Object.entries(r.cpuUnresolved).map(([op, n]) => `${op} ${n}`).join(', ') || '-'} |`);
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  if (process.argv.includes('--child-create')) return childCreate(arg('child-create', ''));
  const [b, t] = arg('shape', '2x32').split('x').map(Number);
  if (process.argv.includes('--child-steps')) return childSteps(b, t, +arg('steps', '20'), process.argv.includes('--specialize'), arg('variant', 'fused') as Variant);
  const variants = arg('variants', 'fused').split(',') as Variant[];
  for (const v of variants) if (!['fused', 'unfused', 'unfused-raw'].includes(v)) throw new Error(`--variants: unknown variant '${v}' (fused, unfused, unfused-raw)`);
  const label = (v: Variant) => (v === 'fused' ? '' : ` ${v}`);
  const outDir = arg('out', path.join(path.dirname(SELF), 'results'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wgpu-placement-'));
  const report: Record<string, unknown> = {};
  const lines: string[] = [];
  for (const configName of arg('configs', 'tiny,0.5b').split(','))
    for (const variant of variants)
    for (const specialize of [false, true]) {
      const shape = specialize ? { batch: b, seq: t } : undefined;
      const rows = placementOf(configName, variant, shape, dir);
      const key = `${configName}${label(variant)}${specialize ? ` specialised ${b}x${t}` : ' dynamic'}`;
      report[key] = rows;
      lines.push(`### ${key}`, '', table(rows), '');
      console.log(`${key}\n${table(rows)}\n`);
    }
  const steps = +arg('steps', '0');
  if (steps > 0)
    for (const variant of variants)
    for (const specialize of [false, true]) {
      const r = spawnChild(['--child-steps', '--shape', `${b}x${t}`, '--steps', String(steps), '--variant', variant, ...(specialize ? ['--specialize'] : [])]);
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
      const res = line ? JSON.parse(line.slice(7)) : { error: r.stderr.slice(-500) };
      const key = `tiny${label(variant)} steps ${b}x${t}${specialize ? ' specialised' : ' dynamic'}`;
      report[key] = res;
      const ms: number[] = res.ms ?? [];
      const rest = ms.slice(2);
      const mean = rest.reduce((a, c) => a + c, 0) / Math.max(1, rest.length);
      const best = Math.min(...rest);
      const summary = res.ms ? `${key}: ${(1000 / mean).toFixed(2)} steps/s (mean ${mean.toFixed(0)} ms, best ${best.toFixed(0)} ms of steps 3..${ms.length}; first ${ms[0].toFixed(0)} ms); per step ${JSON.stringify(res.calls)}; losses ${res.losses[0].toFixed(4)} → ${res.losses[res.losses.length - 1].toFixed(4)}` : `${key}: ERROR ${res.error}`;
      lines.push(summary, '');
      console.log(summary);
    }
  fs.mkdirSync(outDir, { recursive: true });
  const tag = arg('tag', '') && `-${arg('tag', '')}`;
  fs.writeFileSync(path.join(outDir, `webgpu-placement${tag}.json`), JSON.stringify(report, null, 1));
  fs.writeFileSync(path.join(outDir, `webgpu-placement${tag}.tables.md`), lines.join('\n'));
}

await main();
