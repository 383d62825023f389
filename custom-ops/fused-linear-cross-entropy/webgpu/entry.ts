/// <reference types="@webgpu/types" />
/**
 * FusedLinearCrossEntropy(WithGrad) as our WGSL kernel in the webgpu backend's stage plan
 * (src/ops/kernel.ts): loss and, in the same pass, the gradients of hidden, weight and bias.
 */
import { fail } from '../../../src/errors.js';
import type { Node } from '../../../src/ir/graph.js';
import { elementCount, f32, floatInputs, kernelIo, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../../src/ops/kernel.js';
import { GRAD_LOOP } from '../grad.js';
import { nodePrecision } from '../../precision.js';
import { fusedLinearCrossEntropy } from './flce.js';

/** Our kernel by default: no [N, V] logits anywhere (bench/results/train-step-webgpu-h100.md). */
const policy: KernelPolicy = { key: 'flce', default: 'kernel' };

function read(n: Node): KernelRead {
  const why = floatInputs(n, 2);
  if (why) return { why };
  const reduction = n.attrString('reduction', 'mean');
  if (reduction !== 'mean' && reduction !== 'sum') return { why: `reduction '${reduction}' (the kernel does mean or sum)` };
  return {
    attrs: {
      reduction, ignoreIndex: n.attrInt('ignore_index', -100), labelSmoothing: n.attrFloat('label_smoothing', 0),
      chunkRows: n.attrInt('chunk_size', 0), precision: nodePrecision(n),
    },
  };
}

/**
 * The forward node plus the gradient Loop of ../grad.ts (the backward-only rule), which starts from
 * d loss = 1: only valid when the node's output is the graph's loss. WithGrad computes its own.
 */
function absorbs(n: Node): Node[] {
  if (n.opType !== 'FusedLinearCrossEntropy') return [];
  const loops = n.graph.nodes.filter((m) => m.opType === 'Loop' && m.subgraphs()[0]?.name === GRAD_LOOP);
  if (loops.length !== 1 || n.outputs[0].name !== 'loss' || !n.outputs[0].isGraphOutput())
    fail('unsupported', `webgpu kernel policy: ${n.label} cannot be cut: expected its output to be the graph's 'loss' and one gradient Loop '${GRAD_LOOP}', found ${loops.length}`);
  return loops;
}

export const flceKernel: WebGpuKernel = {
  name: 'flce', policy, read, absorbs,
  run(ctx, call, inputs) {
    const { where, drop, need, keep } = kernelIo(call, inputs);
    const hidden = need(0, 'hidden'), weight = need(1, 'weight');
    const labels = inputs[3] ?? fail('runtime', `${where}: input 3 'labels' is missing`);
    if (labels.type !== 'int64' && labels.type !== 'int32') fail('runtime', `${where}: labels are ${labels.type}, expected int64 or int32`);
    const bias = call.inputs[2] ? need(2, 'bias') : undefined;
    // WithGrad's grad_scale (mixed precision's loss_scale): the kernel's gradOutput, which scales the gradients.
    const gradScale = call.inputs[4] ? need(4, 'grad_scale') : undefined;
    if (gradScale && elementCount(gradScale.dims) !== 1) fail('runtime', `${where}: grad_scale has shape [${gradScale.dims}], expected one element`);
    if (hidden.dims.length !== 2 || weight.dims.length !== 2 || hidden.dims[1] !== weight.dims[1])
      fail('runtime', `${where}: hidden [${hidden.dims}] and weight [${weight.dims}] must be [N, H] and [V, H]`);
    const [n, h] = hidden.dims;
    const v = weight.dims[0];
    if (elementCount(labels.dims) !== n) fail('runtime', `${where}: ${elementCount(labels.dims)} labels for ${n} rows`);
    const a = call.attrs;
    const r = fusedLinearCrossEntropy(ctx, {
      hidden: hidden.buffer, weight: weight.buffer, bias: bias?.buffer, labels: labels.buffer, labelType: labels.type === 'int64' ? 'int64' : 'int32',
      n, h, v, ignoreIndex: Number(a.ignoreIndex), labelSmoothing: Number(a.labelSmoothing), reduction: a.reduction as 'mean' | 'sum',
      chunkRows: Number(a.chunkRows) || undefined, precision: a.precision === 'f16' ? 'f16' : 'fp32', gradOutput: gradScale?.buffer,
    });
    drop.push(r.stats);
    const grad = (i: number, buf: GPUBuffer | undefined, dims: readonly number[]) => (buf ? keep(i, f32(buf, dims)) : undefined);
    return {
      outputs: [keep(0, f32(r.loss, [])), grad(1, r.gradHidden, hidden.dims), grad(2, r.gradWeight, weight.dims), bias ? grad(3, r.gradBias, bias.dims) : undefined],
      drop,
    };
  },
};
