/**
 * Splitting a training-step graph around its FusedLinearCrossEntropy node, so that our WGSL FLCE
 * kernel (loss and the hidden/weight/bias gradients in one chunked pass, never [N, V]) runs
 * instead of the portable forward body and the gradient Loop (which ORT's WebGPU EP would run on
 * the CPU):
 *
 *   A (ORT):  params, input_ids, labels → hidden [N,H], labels [N], and the forward values B needs
 *   kernel:   FLCE(hidden, weight, bias?, labels) → loss, dHidden, dWeight, dBias
 *   B (ORT):  params, the values from A, dHidden/dWeight/dBias → grad.<param>
 *
 * B is the training graph with the FLCE gradient Loop's outputs turned into inputs and every node
 * that A computes cut away; A is the training graph pruned to what the kernel and B read. Values
 * cross by name, as gpu-buffer tensors (zero-copy).
 */
import { fail } from '../../errors.js';
import { Value, type Graph, type Model, type Node } from '../../ir/graph.js';
import { tensorType } from '../../ir/types.js';
import { DataType } from '../../onnx/schema.js';
import { cloneModel, removeDeadCode } from '../../autodiff/clone.js';

/** Body name of the FLCE gradient Loop (custom-ops/fused-linear-cross-entropy/grad.ts). */
const GRAD_LOOP = 'linear_ce_grad_chunk';

export interface FlceCut {
  /** Names of the kernel's inputs (bias absent when the node has none). */
  hidden: string;
  weight: string;
  bias?: string;
  labels: string;
  ignoreIndex: number;
  labelSmoothing: number;
  reduction: 'mean' | 'sum';
  /** The node's chunk_size (rows per chunk; absent = the kernel's GPU rule). */
  chunkRows?: number;
  /** B's inputs that the kernel produces. */
  dHidden: string;
  dWeight?: string;
  dBias?: string;
}

export interface FlceSplit {
  a: Model;
  b: Model;
  cut: FlceCut;
  /** A's outputs (hidden and labels first), each an input of B or of the kernel. */
  crossing: string[];
}

const findNode = (g: Graph, pred: (n: Node) => boolean): Node[] => g.nodes.filter(pred);

/** Replace value `v` of graph `g` by a graph input of the same name (its producer becomes dead). */
function toInput(g: Graph, v: Value, type = v.type): void {
  const input = new Value(g, v.name);
  input.type = type ?? (v.producer?.opType === 'Shape' ? tensorType(DataType.INT64, [null]) : undefined);
  if (!input.type) fail('unsupported', `cannot cut the training graph at '${v.name}': its type is unknown`);
  v.name = g.model.freshName(`${v.name}.cut`);
  g.replaceAllUses(v, input);
  g.inputs.push(input);
}

/**
 * The A/kernel/B split of a training graph with exactly one FusedLinearCrossEntropy(WithGrad) node
 * whose loss is the graph's `loss` ('mean' or 'sum'); undefined when the graph has no such node.
 */
export function splitAtFlce(train: Model): FlceSplit | undefined {
  const g = train.graph;
  const of = (op: string) => findNode(g, (n) => n.domain === 'ai.ortfuse' && n.opType === op);
  // In-forward gradients (FusedLinearCrossEntropyWithGrad: loss, dHidden, dWeight, dBias), or the
  // forward node plus the gradient Loop of custom-ops/fused-linear-cross-entropy/grad.ts.
  const withGrad = of('FusedLinearCrossEntropyWithGrad');
  let node: Node;
  let dValues: Value[];
  if (withGrad.length === 1) {
    node = withGrad[0];
    dValues = node.outputs.slice(1);
  } else {
    const flce = of('FusedLinearCrossEntropy');
    const loops = findNode(g, (n) => n.opType === 'Loop' && n.subgraphs()[0]?.name === GRAD_LOOP);
    if (withGrad.length || flce.length !== 1 || loops.length !== 1) return undefined;
    node = flce[0];
    dValues = loops[0].outputs;
  }
  if (node.outputs[0].name !== 'loss') return undefined;
  const reduction = node.attrString('reduction', 'mean');
  if (reduction !== 'mean' && reduction !== 'sum') return undefined;
  const [hidden, weight, bias, labels] = [0, 1, 2, 3].map((i) => node.input(i));
  if (!hidden || !weight || !labels) fail('invalid', `${node.label}: missing input`);
  const dNames = dValues.map((o) => (o.useCount > 0 || o.isGraphOutput() ? o.name : undefined));

  // A: the training graph pruned to the kernel's inputs.
  const a = cloneModel(train);
  const kernelIn = [hidden.name, labels.name].filter((n) => !a.graph.inputs.some((i) => i.name === n));
  a.graph.outputs = kernelIn.map((n) => a.graph.findValue(n)!);
  removeDeadCode(a.graph);
  const inA = new Set<string>();
  for (const n of a.graph.nodes) for (const o of n.outputs) inA.add(o.name);

  // B: the Loop's outputs become inputs; the forward loss goes; A's values become inputs.
  const b = cloneModel(train);
  const bg = b.graph;
  // d(hidden), d(weight), d(bias) have their inputs' types.
  dNames.forEach((name, i) => name && toInput(bg, bg.findValue(name)!, [hidden, weight, bias][i]?.type));
  bg.outputs = bg.outputs.filter((v) => v.name !== 'loss');
  removeDeadCode(bg);
  const crossing = new Set(kernelIn);
  for (const n of bg.nodes) {
    if (n.outputs.some((o) => inA.has(o.name))) continue;
    for (const v of n.inputs) if (v && inA.has(v.name)) crossing.add(v.name);
    for (const sg of n.subgraphs()) for (const v of sg.outerReferences()) if (inA.has(v.name)) crossing.add(v.name);
  }
  for (const v of bg.outputs) if (inA.has(v.name)) crossing.add(v.name);
  for (const name of crossing) {
    const v = bg.findValue(name);
    if (v && v.producer) toInput(bg, v);
  }
  removeDeadCode(bg);
  const left = bg.nodes.find((n) => n.outputs.some((o) => inA.has(o.name)));
  if (left) fail('invalid', `FLCE split: ${left.label} is computed in both segments`);
  // B declares only what it reads; A returns everything the kernel or B reads.
  bg.inputs = bg.inputs.filter((v) => v.useCount > 0 || v.isGraphOutput() || dNames.includes(v.name));
  a.graph.outputs = [...crossing].map((n) => a.graph.findValue(n) ?? fail('invalid', `FLCE split: A does not compute '${n}'`));
  for (const v of a.graph.outputs) if (!v.type) v.type = bg.findValue(v.name)?.type;
  const cut: FlceCut = {
    hidden: hidden.name, weight: weight.name, bias: bias?.name, labels: labels.name,
    ignoreIndex: node.attrInt('ignore_index', -100), labelSmoothing: node.attrFloat('label_smoothing', 0),
    chunkRows: node.attrInt('chunk_size', 0) || undefined, reduction,
    dHidden: dNames[0] ?? fail('invalid', 'FLCE split: the gradient of hidden is unused'),
    dWeight: dNames[1], dBias: bias ? dNames[2] : undefined,
  };
  return { a, b, cut, crossing: [...crossing] };
}
