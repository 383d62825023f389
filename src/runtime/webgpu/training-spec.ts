/**
 * What the webgpu backend runs, made from an IR training graph: the backend's own copy of the graph
 * (`webgpuGraph`), its parameters and, under a per-op policy (./policy.ts, bound here to the
 * registered fused ops), the stage split (./stage-split.ts). Used in Node (./ort-web-node.ts) and
 * ahead of time for the browser page (web/prepare.ts); no Node imports.
 */
import type { Model } from '../../ir/graph.js';
import { saveBytes } from '../../onnx/io.js';
import { DataType } from '../../onnx/schema.js';
import { fail } from '../../errors.js';
import * as policies from './policy.js';
import type { OpPolicy } from './policy.js';
import { splitStages } from './stage-split.js';
import { frozenToInputs } from './frozen.js';
import type { ParamSpec, SpecShape, TrainingSpec } from './trainer.js';
import { cloneModel } from '../../autodiff/clone.js';
import { LOSS_SCALE } from '../../autodiff/names.js';
import { newContext } from '../../rewrite/pass.js';
import { specializeShapes } from '../../../passes/specialize-shapes.js';
import { transposePairPass } from '../../../passes/transpose-pair.js';
import { transposeOfGemmPass } from '../../../passes/transpose-of-gemm.js';
import { dce } from '../../../passes/dce.js';
import { fusedNodes, lowerToOnnx23Pass, ONNX23, whyNotLowered } from '../../../passes/lower-to-onnx-23.js';
import { FUSED_OPS } from '../../../custom-ops/registry.js';

export type { SpecShape } from './trainer.js';
export type { OpPolicy } from './policy.js';

/** `--kernels` as a policy, for the registered fused ops (./policy.ts). */
export const parseKernels = (spec: string) => policies.parseKernels(spec, FUSED_OPS);
/** The policy as a `--kernels` list, for the registered fused ops (./policy.ts). */
export const formatKernels = (p: OpPolicy) => policies.formatKernels(p, FUSED_OPS);

/**
 * Graph bytes and parameters (graph inputs other than input_ids and labels, in graph order), and
 * the stages (ORT segments and our kernels, ./stage-split.ts) when the policy runs some fused op of
 * the graph as our kernel (default: FusedLinearCrossEntropy only; `parseKernels` reads --kernels).
 * With `shape`, the graph is specialised to batches of exactly [batch, seq] first
 * (passes/specialize-shapes.ts: the shape plumbing becomes constants, not per-step CPU nodes).
 */
export function trainingSpec(train: Model, initial: Map<string, Float32Array>, policy: OpPolicy = {}, shape?: SpecShape): TrainingSpec {
  const params: ParamSpec[] = [];
  // Frozen parameters as fed inputs without gradient (./frozen.ts).
  train = cloneModel(train);
  const frozen = frozenToInputs(train);
  for (const v of train.graph.inputs) {
    if (v.name === 'input_ids' || v.name === 'labels' || v.name === LOSS_SCALE) continue;
    const t = v.tensorType;
    if (!t || t.elemType !== DataType.FLOAT) fail('unsupported', `training input '${v.name}' must be float32`);
    const dims = t.shape ?? [];
    if (dims.some((d) => typeof d !== 'number')) fail('unsupported', `parameter '${v.name}' has a non-static shape`);
    const value = initial.get(v.name) ?? frozen.get(v.name) ?? fail('invalid', `no initial value for parameter '${v.name}'`);
    params.push({ name: v.name, dims: dims as number[], value });
  }
  train = webgpuGraph(train, shape, policy);
  const split = splitStages(train, policy, FUSED_OPS);
  const stages = split && { segments: split.segments.map(saveBytes), plan: split.plan, capturable: shape && split.segments.map(capturable) };
  const lossScale = train.graph.inputs.some((v) => v.name === LOSS_SCALE) || undefined;
  return { model: saveBytes(train), params, stages, shape, lossScale };
}

/**
 * Whether ORT-web can run a segment with graph capture (./capture.ts): it reads no batch input
 * (input_ids and labels come from the host, and their int64 plumbing runs on ORT's CPU EP) and
 * every input and output has a static shape.
 */
function capturable(segment: Model): boolean {
  const g = segment.graph;
  const isStatic = (v: (typeof g.inputs)[number]) => !!v.tensorType?.shape?.every((d) => typeof d === 'number');
  return g.inputs.every((v) => v.name !== 'input_ids' && v.name !== 'labels' && isStatic(v)) && g.outputs.every(isStatic);
}

/**
 * The copy of a training graph that the webgpu backend runs: fewer kernels per step (the backward's
 * Transpose pairs and transposed weight-gradient Gemms folded), with `shape`, specialised to
 * batches of exactly [batch, seq], and the forward nodes of the ops whose policy is 'native' as
 * ONNX opset-23 ops (passes/lower-to-onnx-23.ts; this copy's opset becomes 23). A node that
 * cannot be lowered fails, naming it.
 */
export function webgpuGraph(train: Model, shape?: SpecShape, policy: OpPolicy = {}): Model {
  const m = cloneModel(train);
  const ctx = newContext();
  for (const p of [transposePairPass, transposeOfGemmPass, dce]) p.run(m, ctx);
  if (shape) {
    const dims = [shape.batch, shape.seq];
    const inputs = Object.fromEntries(['input_ids', 'labels'].filter((n) => m.graph.inputs.some((v) => v.name === n)).map((n) => [n, dims]));
    specializeShapes(inputs).run(m, ctx);
  }
  const native = policies.nativeOps(policy, FUSED_OPS).map((k) => (k in ONNX23 ? (k as keyof typeof ONNX23) : fail('unsupported', `webgpu native policy: passes/lower-to-onnx-23.ts cannot lower '${k}'`)));
  if (native.length) {
    lowerToOnnx23Pass(native).run(m, ctx);
    for (const n of fusedNodes(m, native)) {
      const op = native.find((k) => ONNX23[k].fused === n.opType)!;
      fail('unsupported', `webgpu native policy: ${n.label} cannot run as ONNX ${ONNX23[op].onnx}-23: ${whyNotLowered(n) ?? 'not lowered'} (run ${op} in ORT or as our kernel instead)`);
    }
  }
  return m;
}
