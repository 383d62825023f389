/**
 * Options of `createTrainer`, named and defaulted as `ortfuse train`'s (src/cli/train.ts), checked
 * before anything is built: one usage error naming the option.
 */
import { fail } from '../errors.js';
import { resolveLora, type LoraOptions, type ResolvedLora } from '../params/lora-config.js';
import { defaultFuseAttention, defaultFuseLinear, defaultFuseMlp } from '../runtime/session.js';
import { MLP_RECOMPUTE, type MlpRecompute } from '../runtime/memory-budget.js';
import { checkInitialLossScale, PRECISIONS, type Precision } from '../runtime/loss-scale.js';

export type BackendName = 'cpu' | 'webgpu';

export interface TrainerConfig {
  /** 'cpu' (onnxruntime-node) or 'webgpu' (onnxruntime-web's WebGPU EP; in Node on dawn.node). Default 'cpu'. */
  backend?: BackendName;
  /** Peak learning rate of AdamW (default 1e-3). */
  lr?: number;
  /** Length of the schedule in steps: linear warm-up, then the decay (`schedule`) ends at this step (default 50). */
  steps?: number;
  /** Warm-up steps (default min(10, floor(steps / 10))). */
  warmup?: number;
  /** Decay after the warm-up: 'cosine' or 'linear' down to minLrRatio·lr at `steps`, or 'constant' (default 'cosine'). */
  schedule?: 'cosine' | 'linear' | 'constant';
  /** Final learning rate of cosine/linear as a fraction of lr (default 0.1). */
  minLrRatio?: number;
  /** AdamW's decoupled weight decay; none for 1-D parameters (norm weights, biases) (default 0.01). */
  weightDecay?: number;
  /** Clip the global gradient norm to this (0 = off; default 1). */
  clip?: number;
  /** Fuse linear+cross-entropy, RMSNorm, SwiGLU and RoPE before building the step (default true). */
  fuse?: boolean;
  /**
   * As `--precision`: 'fp32' (default), or 'mixed' (needs fuse): the fused MLP and linear-CE ops'
   * GEMMs take f16 operands with fp32 accumulation; parameters, AdamW and activations stay fp32;
   * dynamic loss scaling (a step whose gradients overflow is skipped, StepInfo.skipped).
   */
  precision?: Precision;
  /** With precision 'mixed': the loss scale of the first step (default 2^16), as `--initial-loss-scale`. */
  initialLossScale?: number;
  /** With fuse: each whole SwiGLU MLP as one op, as `--fuse-mlp` (default: on for webgpu, where the default kernels run it on our GEMMs; off on cpu). */
  fuseMlp?: boolean;
  /**
   * With fuseMlp, as `--mlp-recompute`: the fused MLP's backward recomputes gate and up ('on'),
   * reads them kept from the forward ('off': 2 × [batch·seq, I] more per layer, two GEMMs fewer), or
   * 'auto' (default): as memoryBudget needs, else kept on webgpu and recomputed on cpu.
   */
  mlpRecompute?: MlpRecompute;
  /** With fuse: each layer's causal attention as one op, as `--fuse-attention` (default: on for webgpu, else off; defaultFuseAttention). */
  fuseAttention?: boolean;
  /** With fuse: each remaining projection by a parameter (the attention's q, k, v, o) as one Linear op, as `--fuse-linear` (default: on for webgpu, else off; defaultFuseLinear). */
  fuseLinear?: boolean;
  /** Globs of parameters to train, as `--trainable` (torch names where the export records them; default all). */
  trainable?: string | string[];
  /** Globs of parameters to keep fixed, as `--freeze` (default none). */
  freeze?: string | string[];
  /** webgpu: the fused ops that run as ortfuse's WGSL kernels, as `--kernels` (default 'flce,swiglu'). */
  kernels?: string;
  /** webgpu: specialise the step graph to batches of exactly batch x seq (both or neither; default: not specialised). */
  batch?: number;
  seq?: number;
  /** cpu: ORT intra-op threads (default: ORT's choice). */
  threads?: number;
  /** cpu: extra onnxruntime-node session options (e.g. { enableMemPattern: false } for big models). */
  sessionOptions?: Record<string, unknown>;
  /**
   * webgpu: the onnxruntime-web module to train on (`import * as ort from 'onnxruntime-web/webgpu'`),
   * so the trainer shares its `ort.env` and GPUDevice with the caller's sessions. Default: ortfuse
   * imports onnxruntime-web/webgpu itself (the same module a caller importing that path gets).
   */
  ort?: object;
  /** Parameters without weight decay (default: 1-D ones). */
  noDecay?: (name: string, dims: number[]) => boolean;
  /**
   * LoRA: freeze the model and train low-rank adapters on its projections, as `--lora`:
   * `'r=16,alpha=32,dropout=0,targets=q,k,v,o,gate,up,down'` or `{ r, alpha?, dropout?, targets?,
   * init? }` (src/params/lora-config.ts). `init`: a PEFT adapter's files to start from.
   */
  lora?: string | LoraOptions;
  /**
   * Bytes one step of batch x seq may use (cpu: peak RSS; webgpu: live GPU buffers), as
   * `--memory-budget`: the backward's recomputation is planned to fit, or createTrainer refuses
   * (error 'resources') naming the smallest budget that can be met. Needs batch and seq.
   */
  memoryBudget?: number;
  /**
   * webgpu, with batch and seq: run the ORT segments that read no host input as onnxruntime-web
   * graph captures (recorded once, replayed at each step): less host time per step, but every
   * intermediate of a captured segment stays allocated (bench/results/graph-capture-h200.md).
   * Not with memoryBudget.
   */
  graphCapture?: boolean;
  /**
   * webgpu: once two consecutive steps recorded the same commands, later steps replay them instead
   * of running the kernels' host code again (default true; src/webgpu/step-tape.ts). false records
   * every step.
   */
  stepReplay?: boolean;
}

/** TrainerConfig with its defaults filled in. */
export interface ResolvedOptions extends Omit<TrainerConfig, 'lora'> {
  lora?: ResolvedLora;
  backend: BackendName;
  lr: number;
  steps: number;
  warmup: number;
  schedule: 'cosine' | 'linear' | 'constant';
  minLrRatio: number;
  weightDecay: number;
  clip: number;
  fuse: boolean;
  precision: Precision;
  fuseMlp: boolean;
  fuseAttention: boolean;
  fuseLinear: boolean;
  trainable?: string[];
  freeze?: string[];
}

const KNOWN = new Set(['backend', 'lr', 'steps', 'warmup', 'schedule', 'minLrRatio', 'weightDecay', 'clip', 'fuse', 'precision', 'initialLossScale', 'fuseMlp', 'mlpRecompute', 'fuseAttention', 'fuseLinear', 'trainable', 'freeze', 'kernels', 'batch', 'seq', 'threads', 'sessionOptions', 'ort', 'noDecay', 'lora', 'memoryBudget', 'graphCapture', 'stepReplay']);

function int(v: unknown, name: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail('usage', `option ${name} must be an integer ≥ ${min} (got ${String(v)})`);
  return v;
}

function num(v: unknown, name: string, ok: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail('usage', `option ${name} must be ${what} (got ${String(v)})`);
  return v;
}

function globs(v: unknown, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((g) => typeof g !== 'string' || g === '')) fail('usage', `option ${name} must be a glob or an array of globs (got ${JSON.stringify(v)})`);
  return list as string[];
}

/** Check the options and fill in the defaults. */
export function resolveOptions(c: TrainerConfig): ResolvedOptions {
  if (c === null || typeof c !== 'object') fail('usage', 'createTrainer() options must be an object');
  for (const k of Object.keys(c)) if (!KNOWN.has(k)) fail('usage', `unknown option '${k}' (options: ${[...KNOWN].join(', ')})`);
  const backend = c.backend ?? 'cpu';
  if (backend !== 'cpu' && backend !== 'webgpu') fail('usage', `option backend must be 'cpu' or 'webgpu' (got ${String(backend)})`);
  const steps = int(c.steps ?? 50, 'steps', 1);
  const o: ResolvedOptions = {
    ...c,
    backend,
    steps,
    lr: num(c.lr ?? 1e-3, 'lr', (x) => x > 0, 'a number > 0'),
    warmup: int(c.warmup ?? Math.min(10, Math.floor(steps / 10)), 'warmup', 0),
    schedule: c.schedule ?? 'cosine',
    minLrRatio: num(c.minLrRatio ?? 0.1, 'minLrRatio', (x) => x >= 0 && x <= 1, 'a number between 0 and 1'),
    weightDecay: num(c.weightDecay ?? 0.01, 'weightDecay', (x) => x >= 0, 'a number ≥ 0'),
    clip: num(c.clip ?? 1, 'clip', (x) => x >= 0, 'a number ≥ 0 (0 = off)'),
    fuse: c.fuse ?? true,
    precision: c.precision ?? 'fp32',
    fuseMlp: c.fuseMlp ?? defaultFuseMlp(backend, c.fuse ?? true),
    fuseAttention: c.fuseAttention ?? defaultFuseAttention(backend, c.fuse ?? true),
    fuseLinear: c.fuseLinear ?? defaultFuseLinear(backend, c.fuse ?? true),
    trainable: globs(c.trainable, 'trainable'),
    freeze: globs(c.freeze, 'freeze'),
    lora: c.lora === undefined ? undefined : resolveLora(c.lora),
  };
  if (o.lora && (o.trainable || o.freeze)) fail('usage', `option ${o.trainable ? 'trainable' : 'freeze'} does not apply with lora (only the adapters train)`);
  if (!['cosine', 'linear', 'constant'].includes(o.schedule)) fail('usage', `option schedule must be 'cosine', 'linear' or 'constant' (got ${String(o.schedule)})`);
  if (typeof o.fuse !== 'boolean') fail('usage', `option fuse must be true or false (got ${String(o.fuse)})`);
  if (!PRECISIONS.includes(o.precision)) fail('usage', `option precision must be ${PRECISIONS.map((p) => `'${p}'`).join(' or ')} (got ${String(o.precision)})`);
  if (o.precision === 'mixed' && !o.fuse) fail('usage', "option precision 'mixed': mixed precision rounds the fused ops' GEMM operands; it needs fuse");
  if (c.initialLossScale !== undefined) {
    if (o.precision !== 'mixed') fail('usage', "option initialLossScale is an option of precision 'mixed'");
    checkInitialLossScale(c.initialLossScale, 'option initialLossScale');
  }
  if (typeof o.fuseMlp !== 'boolean') fail('usage', `option fuseMlp must be true or false (got ${String(o.fuseMlp)})`);
  if (o.fuseMlp && !o.fuse) fail('usage', 'option fuseMlp needs fuse (the MLP fusion runs after the SwiGLU one)');
  if (c.mlpRecompute !== undefined) {
    if (!MLP_RECOMPUTE.includes(c.mlpRecompute)) fail('usage', `option mlpRecompute must be ${MLP_RECOMPUTE.map((m) => `'${m}'`).join(', ')} (got ${String(c.mlpRecompute)})`);
    if (c.mlpRecompute !== 'auto' && !o.fuseMlp) fail('usage', `option mlpRecompute '${c.mlpRecompute}' acts on the fused MLP: it needs fuseMlp`);
  }
  if (typeof o.fuseAttention !== 'boolean') fail('usage', `option fuseAttention must be true or false (got ${String(o.fuseAttention)})`);
  if (o.fuseAttention && !o.fuse) fail('usage', 'option fuseAttention needs fuse (it is one of the fusion passes)');
  if (typeof o.fuseLinear !== 'boolean') fail('usage', `option fuseLinear must be true or false (got ${String(o.fuseLinear)})`);
  if (o.fuseLinear && !o.fuse) fail('usage', 'option fuseLinear needs fuse (it is one of the fusion passes)');
  if (o.warmup > steps) fail('usage', `option warmup (${o.warmup}) is longer than the schedule (steps ${steps})`);
  if ((c.batch === undefined) !== (c.seq === undefined)) fail('usage', 'options batch and seq go together (the batch shape the webgpu step graph is specialised to)');
  if (c.batch !== undefined) int(c.batch, 'batch', 1);
  if (c.seq !== undefined) int(c.seq, 'seq', 2);
  if (c.threads !== undefined) int(c.threads, 'threads', 1);
  if (c.memoryBudget !== undefined) {
    num(c.memoryBudget, 'memoryBudget', (x) => x > 0, 'a number of bytes > 0');
    if (c.batch === undefined) fail('usage', 'option memoryBudget needs batch and seq (the recomputation is planned for one batch shape)');
  }
  if (c.graphCapture !== undefined) {
    if (typeof c.graphCapture !== 'boolean') fail('usage', `option graphCapture must be true or false (got ${String(c.graphCapture)})`);
    if (c.graphCapture && c.batch === undefined) fail('usage', 'option graphCapture needs batch and seq (a capture replays one batch shape)');
    if (c.graphCapture && c.memoryBudget !== undefined) fail('usage', 'option graphCapture keeps every intermediate of the captured segments allocated: it does not combine with memoryBudget');
  }
  if (c.stepReplay !== undefined && typeof c.stepReplay !== 'boolean') fail('usage', `option stepReplay must be true or false (got ${String(c.stepReplay)})`);
  const webgpuOnly = (['kernels', 'ort', 'graphCapture', 'stepReplay'] as const).filter((k) => c[k] !== undefined);
  if (backend !== 'webgpu' && webgpuOnly.length) fail('usage', `option ${webgpuOnly[0]} is an option of backend 'webgpu' (got backend '${backend}')`);
  const cpuOnly = (['threads', 'sessionOptions'] as const).filter((k) => c[k] !== undefined);
  if (backend !== 'cpu' && cpuOnly.length) fail('usage', `option ${cpuOnly[0]} is an option of backend 'cpu' (got backend '${backend}')`);
  if (c.kernels !== undefined && typeof c.kernels !== 'string') fail('usage', `option kernels must be a string like 'flce,swiglu' (got ${typeof c.kernels})`);
  if (c.ort !== undefined && typeof (c.ort as { InferenceSession?: unknown }).InferenceSession !== 'function')
    fail('usage', "option ort must be the onnxruntime-web module (import * as ort from 'onnxruntime-web/webgpu')");
  return o;
}
