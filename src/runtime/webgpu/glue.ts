/// <reference types="@webgpu/types" />
/**
 * The standard ONNX ops that the webgpu backend's stage plan may run as our WGSL kernels
 * (src/webgpu/glue.ts) instead of in an ONNX Runtime segment (`--kernels` key `glue`): the residual
 * and gradient-sum Adds, the head Transposes and the Reshape-like views between fused ops, and the
 * embedding gradient's scatter at the end of the step. Without them every such node between two
 * fused-op kernels is an ORT run of its own (~2-3 ms of host work each in ORT-web,
 * bench/results/step-speed-h200.md; the scatter was the step's last segment); with them the fused
 * ops of a layer follow each other in one kernel group.
 *
 * A node runs here only when it can (fp32 data, a static output shape for the views, inputs that are
 * not initializers); any other stays in ORT — glue is taken where it fits, never an error.
 *
 *   Add                                       fp32, numpy broadcasting; in place into an input the
 *                                             plan no longer reads when it has the output's shape.
 *   Transpose                                 fp32, `perm`.
 *   Reshape, Squeeze, Unsqueeze, Flatten,     a view: the output is the input's buffer with the
 *   Identity                                  node's static output shape (no command at all).
 *   ScatterND, reduction 'add'                the embedding gradient (src/autodiff/rules/gather.ts):
 *                                             int64 indices [..., 1], fp32 updates, a static output
 *                                             shape [V, H…]. Onto zeros (data an Expand or
 *                                             ConstantOfShape of a scalar 0): the call reads the
 *                                             indices and updates only and allocates its own zeroed
 *                                             output, so the zeros are never made (their Expand is
 *                                             dead code). Onto fp32 data (a tied weight's gradient,
 *                                             passes/scatter-add-into.ts): in place into the data's
 *                                             buffer when the plan no longer reads it, else into a
 *                                             copy. Repeated indices sum in row order from the
 *                                             starting value (deterministic; ORT's CPU sums).
 *   Concat, Split, Slice (one axis, step 1)   fp32 of static shapes, constant split sizes and slice
 *                                             bounds: block copies, up to four inputs or outputs a dispatch (the stacked
 *                                             projections of passes/stack-projections.ts and their
 *                                             gradients).
 *   Gather, axis 0                            the embedding: rows of fp32 data [V, H…] (a parameter
 *                                             or a value of ours) by int64 indices — these may be the
 *                                             batch's input_ids, written to the GPU once a step (the
 *                                             one host-fed input a glue call reads: glueHostInputs).
 */
import { fail } from '../../errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { DataType } from '../../onnx/schema.js';
import { f32, floatInputs, kernelIo, type KernelCall, type KernelPolicy, type KernelRead, type WebGpuKernel } from '../../ops/kernel.js';
import { constantNumbers, zerosOfShape } from '../../rewrite/constant.js';
import { addBroadcast, broadcastDims, copyBlock, gatherRows, joinBlocks, MAX_RANK, scatterAdd, transpose } from '../../webgpu/glue.js';

/**
 * `--kernels glue`, on by default: with every fused op on our kernels the 0.5B 8×512 mixed step
 * runs 2 ORT segments instead of 146, 8,437 → 9,539 tok/s on an H200, same call (bench/results/step-speed-h200.md, session 9);
 * with the embedding Gather and its gradient's scatter here too, none on the GPU (what is left
 * runs on the host: StagePlan.hostSegments; not yet timed on a GPU).
 */
export const GLUE_POLICY: KernelPolicy = { key: 'glue', default: 'kernel' };

const VIEWS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);

const elements = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
/** The static output dims a view or scatter call carries in its `dims` attribute. */
const attrDims = (call: KernelCall) => String(call.attrs.dims).split(',').filter(Boolean).map(Number);

function staticShape(n: Node): number[] | undefined {
  const s = n.outputs[0]?.tensorType?.shape;
  return s && s.every((d): d is number => typeof d === 'number') ? s : undefined;
}

function rankOk(n: Node): string | undefined {
  for (const v of [...n.inputs, ...n.outputs]) {
    const r = v?.tensorType?.shape?.length;
    if (r !== undefined && r > MAX_RANK) return `'${v!.name}' has rank ${r} (our glue kernels take up to ${MAX_RANK})`;
  }
  return undefined;
}

const addKernel: WebGpuKernel = {
  name: 'add', policy: GLUE_POLICY,
  read(n): KernelRead {
    const why = floatInputs(n, 2) ?? rankOk(n);
    return why ? { why } : { attrs: {} };
  },
  run(ctx, call, inputs, mayReuse) {
    const { need, keep, drop, where } = kernelIo(call, inputs);
    const a = need(0, 'A'), b = need(1, 'B');
    const dims = broadcastDims(where, a.dims, b.dims);
    const fits = (i: number, x: typeof a) => a.buffer !== b.buffer && mayReuse(i) && x.dims.length === dims.length && x.dims.every((d, j) => d === dims[j]);
    const into = fits(0, a) ? 0 : fits(1, b) ? 1 : undefined;
    const r = addBroadcast(ctx, a, b, into === undefined ? undefined : [a, b][into].buffer);
    return { outputs: [keep(0, { buffer: r.buffer, dims: r.dims, type: 'float32' })], drop, ...(into !== undefined ? { reused: into } : {}) };
  },
};

const transposeKernel: WebGpuKernel = {
  name: 'transpose', policy: GLUE_POLICY,
  read(n): KernelRead {
    const why = floatInputs(n, 1) ?? rankOk(n);
    if (why) return { why };
    const perm = n.attr('perm') ? n.attrInts('perm') : undefined;
    return { attrs: perm ? { perm: perm.join(',') } : {} };
  },
  run(ctx, call, inputs) {
    const { need, keep, drop } = kernelIo(call, inputs);
    const x = need(0, 'data');
    const perm = typeof call.attrs.perm === 'string' ? call.attrs.perm.split(',').map(Number) : undefined;
    const r = transpose(ctx, x, perm);
    return { outputs: [keep(0, { buffer: r.buffer, dims: r.dims, type: 'float32' })], drop };
  },
};

const viewKernel: WebGpuKernel = {
  name: 'view', policy: GLUE_POLICY,
  read(n): KernelRead {
    const t = n.inputs[0]?.tensorType?.elemType;
    if (t !== DataType.FLOAT) return { why: `input 0 '${n.inputs[0]?.name}' is not float32` };
    const dims = staticShape(n);
    if (!dims) return { why: `the shape of '${n.outputs[0]?.name}' is not static` };
    return { attrs: { dims: dims.join(',') } };
  },
  run(_ctx, call, inputs) {
    const { need, where } = kernelIo(call, inputs);
    const x = need(0, 'data');
    const dims = attrDims(call);
    if (elements(dims) !== elements(x.dims)) fail('runtime', `${where}: input [${x.dims}] has ${elements(x.dims)} elements, the output [${dims}] ${elements(dims)}`);
    return { outputs: [{ buffer: x.buffer, dims, type: x.type }], drop: [], viewOf: 0 };
  },
};

/** Why `v` is not a float32 tensor of zeros made by Expand(scalar 0) or ConstantOfShape(0), if it is not. */
function notZeros(v: Value | null | undefined): string | undefined {
  if (v?.tensorType?.elemType !== DataType.FLOAT) return `data '${v?.name}' is not float32`;
  const z = zerosOfShape(v);
  return z.ok ? undefined : `data ${z.why}`;
}

/** Whether ScatterND `n` adds onto zeros its glue call makes itself (else it reads its data). */
const ontoZeros = (n: Node) => !notZeros(n.inputs[0]);

const scatterAddKernel: WebGpuKernel = {
  name: 'scatterAdd', policy: GLUE_POLICY,
  read(n): KernelRead {
    if (n.attrString('reduction', 'none') !== 'add') return { why: `reduction is '${n.attrString('reduction', 'none')}', not 'add'` };
    const [data, indices, updates] = n.inputs;
    const zeros = ontoZeros(n);
    if (!zeros && data?.tensorType?.elemType !== DataType.FLOAT) return { why: `data '${data?.name}' is neither float32 nor zeros of an Expand or ConstantOfShape of 0` };
    const why = rankOk(n);
    if (why) return { why };
    if (indices?.tensorType?.elemType !== DataType.INT64) return { why: `indices '${indices?.name}' are not int64` };
    if (indices.tensorType.shape?.at(-1) !== 1) return { why: `indices '${indices.name}' do not end in a dim of 1 (whole rows)` };
    if (updates?.tensorType?.elemType !== DataType.FLOAT) return { why: `updates '${updates?.name}' are not float32` };
    const dims = staticShape(n);
    if (!dims?.length) return { why: `the shape of '${n.outputs[0]?.name}' is not static, or is a scalar's` };
    return { attrs: { dims: dims.join(','), zeros: zeros ? 1 : 0 } };
  },
  run(ctx, call, inputs, mayReuse) {
    const { need, keep, drop, where } = kernelIo(call, inputs);
    const zeros = call.attrs.zeros !== 0;
    const at = zeros ? 0 : 1;
    const indices = need(at, 'indices', 'int64'), updates = need(at + 1, 'updates');
    const dims = attrDims(call);
    const n = elements(indices.dims), h = elements(dims.slice(1)), bytes = elements(dims) * 4;
    if (indices.dims.at(-1) !== 1) fail('runtime', `${where}: indices [${indices.dims}] do not end in a dim of 1`);
    if (elements(updates.dims) !== n * h) fail('runtime', `${where}: updates [${updates.dims}] are not ${n} rows of ${h} (indices [${indices.dims}], output [${dims}])`);
    let out: GPUBuffer, inPlace = false;
    if (zeros) out = ctx.buffer('scatterAdd.out', bytes);
    else {
      const data = need(0, 'data');
      if (data.dims.length !== dims.length || data.dims.some((d, i) => d !== dims[i])) fail('runtime', `${where}: data [${data.dims}] is not of the output's shape [${dims}]`);
      inPlace = mayReuse(0) && data.buffer !== updates.buffer && data.buffer !== indices.buffer;
      out = inPlace ? data.buffer : ctx.buffer('scatterAdd.out', bytes, 'any');
      if (!inPlace && bytes) ctx.copy(data.buffer, 0, out, 0, bytes);
    }
    scatterAdd(ctx, indices.buffer, updates.buffer, out, { n, v: dims[0], h });
    return { outputs: [keep(0, f32(out, dims))], drop, ...(inPlace ? { reused: 0 } : {}) };
  },
};

const gatherKernel: WebGpuKernel = {
  name: 'gather', policy: GLUE_POLICY,
  read(n): KernelRead {
    const [data, indices] = n.inputs;
    if (n.attrInt('axis', 0) !== 0) return { why: `axis ${n.attrInt('axis', 0)} (our Gather takes rows: axis 0)` };
    if (data?.tensorType?.elemType !== DataType.FLOAT) return { why: `data '${data?.name}' is not float32` };
    if (indices?.tensorType?.elemType !== DataType.INT64) return { why: `indices '${indices?.name}' are not int64` };
    const dims = staticShape(n);
    if (!dims) return { why: `the shape of '${n.outputs[0]?.name}' is not static` };
    return { attrs: {} };
  },
  run(ctx, call, inputs) {
    const { need, keep, drop } = kernelIo(call, inputs);
    const data = need(0, 'data'), indices = need(1, 'indices', 'int64');
    const r = gatherRows(ctx, data, indices);
    return { outputs: [keep(0, f32(r.buffer, r.dims))], drop };
  },
};

/** Static dims of every value in `vs`, or why not. */
function staticDims(vs: readonly (Value | null | undefined)[]): number[][] | string {
  const out: number[][] = [];
  for (const v of vs) {
    const s = v?.tensorType?.shape;
    if (!s || !s.every((d): d is number => typeof d === 'number')) return `the shape of '${v?.name}' is not static`;
    out.push(s);
  }
  return out;
}

/** `axis` (negative counts from the end) in [0, rank), or undefined. */
function normAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}

/**
 * Rows and row length of `dims` cut at `axis`: rows = the dims before it, inner = the dims after
 * it; a range [a, b) of the axis is the column range [a·inner, b·inner) of every row.
 */
const cut = (dims: readonly number[], axis: number) => ({ rows: elements(dims.slice(0, axis)), inner: elements(dims.slice(axis + 1)) });

const concatKernel: WebGpuKernel = {
  name: 'concat', policy: GLUE_POLICY,
  read(n): KernelRead {
    const why = floatInputs(n, n.inputs.length) ?? rankOk(n);
    if (why) return { why };
    const shapes = staticDims([...n.inputs, n.outputs[0]]);
    if (typeof shapes === 'string') return { why: shapes };
    const out = shapes.pop()!;
    const axis = normAxis(n.attrInt('axis', 0), out.length);
    if (axis === undefined) return { why: `axis ${n.attrInt('axis', 0)} is outside rank ${out.length}` };
    return { attrs: { axis, dims: out.join(','), parts: shapes.map((d) => d[axis]).join(',') } };
  },
  run(ctx, call, inputs) {
    const { need, keep, drop, where } = kernelIo(call, inputs);
    const dims = attrDims(call), axis = Number(call.attrs.axis), parts = String(call.attrs.parts).split(',').map(Number);
    const { rows, inner } = cut(dims, axis);
    const out = ctx.buffer('concat.out', elements(dims) * 4, 'any');
    const blocks = parts.map((size, j) => {
      const x = need(j, `input ${j}`);
      if (x.dims.length !== dims.length || x.dims.some((d, i) => d !== (i === axis ? size : dims[i]))) fail('runtime', `${where}: input ${j} [${x.dims}] does not fit the output [${dims}] at axis ${axis}`);
      return { buffer: x.buffer, cols: size * inner };
    });
    if (blocks.some((b) => b.buffer === out)) fail('runtime', `${where}: an input is the output's buffer`);
    joinBlocks(ctx, blocks, out, rows, true);
    return { outputs: [keep(0, f32(out, dims))], drop };
  },
};

/** Split's sizes along its axis: the `split` input (a constant) or attribute, else equal parts. */
function splitSizes(n: Node, extent: number): number[] | string {
  const given = n.inputs[1] ? constantNumbers(n.inputs[1]) : n.attr('split') ? n.attrInts('split') : undefined;
  if (n.inputs[1] && !given) return `its split sizes '${n.inputs[1].name}' are not a constant`;
  if (given) return given.reduce((a, b) => a + b, 0) === extent ? given : `split sizes [${given}] do not add up to ${extent}`;
  const k = n.outputs.length;
  return extent % k === 0 ? new Array(k).fill(extent / k) : `${extent} does not split into ${k} equal parts`;
}

const splitKernel: WebGpuKernel = {
  name: 'split', policy: GLUE_POLICY,
  read(n): KernelRead {
    const why = floatInputs(n, 1) ?? rankOk(n);
    if (why) return { why };
    const shapes = staticDims([n.inputs[0]]);
    if (typeof shapes === 'string') return { why: shapes };
    const dims = shapes[0];
    const axis = normAxis(n.attrInt('axis', 0), dims.length);
    if (axis === undefined) return { why: `axis ${n.attrInt('axis', 0)} is outside rank ${dims.length}` };
    const sizes = splitSizes(n, dims[axis]);
    if (typeof sizes === 'string') return { why: sizes };
    if (sizes.length !== n.outputs.length) return { why: `${sizes.length} split sizes for ${n.outputs.length} outputs` };
    return { attrs: { axis, dims: dims.join(','), sizes: sizes.join(',') } };
  },
  run(ctx, call, inputs) {
    const { need, drop, where } = kernelIo(call, inputs);
    const x = need(0, 'input');
    const dims = attrDims(call), axis = Number(call.attrs.axis), sizes = String(call.attrs.sizes).split(',').map(Number);
    if (x.dims.length !== dims.length || x.dims.some((d, i) => d !== dims[i])) fail('runtime', `${where}: input [${x.dims}] is not the planned [${dims}]`);
    const { rows, inner } = cut(dims, axis);
    const outputs = sizes.map((size, k) => (call.outputs[k] == null ? undefined : f32(ctx.buffer('split.out', rows * size * inner * 4, 'any'), dims.map((d, i) => (i === axis ? size : d)))));
    if (outputs.every((o) => o)) joinBlocks(ctx, outputs.map((o, k) => ({ buffer: o!.buffer, cols: sizes[k] * inner })), x.buffer, rows, false);
    else {
      // Some outputs unread: copy the others one by one.
      let at = 0;
      sizes.forEach((size, k) => {
        const o = outputs[k];
        if (o) copyBlock(ctx, x.buffer, o.buffer, { rows, cols: size * inner, srcLd: dims[axis] * inner, srcOffset: at * inner, dstLd: size * inner, dstOffset: 0 });
        at += size;
      });
    }
    return { outputs, drop };
  },
};

const sliceKernel: WebGpuKernel = {
  name: 'slice', policy: GLUE_POLICY,
  read(n): KernelRead {
    const why = floatInputs(n, 1) ?? rankOk(n);
    if (why) return { why };
    const shapes = staticDims([n.inputs[0], n.outputs[0]]);
    if (typeof shapes === 'string') return { why: shapes };
    const [dims, out] = shapes;
    const [starts, , axes, steps] = [1, 2, 3, 4].map((i) => (n.inputs[i] ? constantNumbers(n.inputs[i]) : undefined));
    if (!starts || (n.inputs[3] && !axes) || (n.inputs[4] && !steps)) return { why: 'its starts, axes or steps are not constants' };
    if (steps?.some((x) => x !== 1)) return { why: `steps [${steps}] (our Slice copies step 1)` };
    // The one axis whose extent changes (any other must be whole), and where its range starts.
    const cutAxes = dims.map((d, i) => i).filter((i) => out[i] !== dims[i]);
    if (cutAxes.length > 1) return { why: `it cuts ${cutAxes.length} axes (our Slice copies one)` };
    const axis = cutAxes[0] ?? 0;
    const k = (axes ?? starts.map((_, i) => i)).findIndex((a) => normAxis(a, dims.length) === axis);
    const s = k < 0 ? 0 : starts[k] < 0 ? starts[k] + dims[axis] : starts[k];
    const start = Math.min(Math.max(s, 0), dims[axis]);
    if (start + out[axis] > dims[axis]) return { why: `the range [${start}, ${start + out[axis]}) is outside axis ${axis} of [${dims}]` };
    return { attrs: { axis, start, from: dims.join(','), dims: out.join(',') } };
  },
  run(ctx, call, inputs) {
    const { need, keep, drop, where } = kernelIo(call, inputs);
    const x = need(0, 'data');
    const from = String(call.attrs.from).split(',').map(Number), dims = attrDims(call), axis = Number(call.attrs.axis), start = Number(call.attrs.start);
    if (x.dims.length !== from.length || x.dims.some((d, i) => d !== from[i])) fail('runtime', `${where}: input [${x.dims}] is not the planned [${from}]`);
    const { rows, inner } = cut(from, axis);
    const y = ctx.buffer('slice.out', elements(dims) * 4, 'any');
    copyBlock(ctx, x.buffer, y, { rows, cols: dims[axis] * inner, srcLd: from[axis] * inner, srcOffset: start * inner, dstLd: dims[axis] * inner, dstOffset: 0 });
    return { outputs: [keep(0, f32(y, dims))], drop };
  },
};

/** The glue kernels by ONNX op type (domain ''). */
export const GLUE_BY_OP: ReadonlyMap<string, WebGpuKernel> = new Map([
  ['Add', addKernel], ['Transpose', transposeKernel], ['ScatterND', scatterAddKernel], ['Gather', gatherKernel], ...[...VIEWS].map((op) => [op, viewKernel] as const),
  ['Concat', concatKernel], ['Split', splitKernel], ['Slice', sliceKernel],
]);

/** The glue kernels by kernel name (KernelCall.op). */
export const GLUE_KERNELS: ReadonlyMap<string, WebGpuKernel> = new Map([addKernel, transposeKernel, scatterAddKernel, gatherKernel, viewKernel, concatKernel, splitKernel, sliceKernel].map((k) => [k.name, k]));

/** The inputs of `n` (by index) its glue call may read from the host-fed batch: Gather's indices. */
export function glueHostInputs(n: Node): number[] {
  return n.opType === 'Gather' ? [1] : [];
}

/**
 * The inputs of `n` (by index) that its glue call reads, in the call's input order: input 0 for
 * the views, Split and Slice (their shape, axes, sizes and bounds are read at plan time into the call's attributes), the
 * indices and updates for a ScatterND onto zeros (the zeros are the kernel's own), all for the others.
 */
export function glueInputs(n: Node): number[] {
  // Split sizes and Slice bounds are constants read at plan time into the call's attributes.
  if (VIEWS.has(n.opType) || n.opType === 'Split' || n.opType === 'Slice') return [0];
  if (n.opType === 'ScatterND' && ontoZeros(n)) return [1, 2];
  return n.inputs.map((_, i) => i);
}

/**
 * Adds to `calls` the glue nodes (./glue.ts) worth running as our kernels: those that can, and
 * whose data all comes from our kernels (or GPU graph inputs) or whose results all go to our
 * kernels (or graph outputs), through chains of such glue. A glue node between two ORT nodes stays
 * in ORT: as our kernel it would cut their segment in two. `hostFed`: the graph inputs fed from
 * the host (read only where glueHostInputs allows).
 */
export function glueCalls(g: Graph, calls: Map<Node, KernelCall>, absorbedBy: Map<Node, Node>, hostFed: ReadonlySet<string>): void {
  const can = new Map<Node, { name: string; attrs: Record<string, number | string> }>();
  for (const n of g.nodes) {
    const rule = (n.domain ?? '') === '' || n.domain === 'ai.onnx' ? GLUE_BY_OP.get(n.opType) : undefined;
    if (!rule || absorbedBy.has(n)) continue;
    // Initializers stay with ORT, and host-fed batch values except where a glue kernel takes them (Gather's indices).
    const hostOk = glueHostInputs(n);
    if (glueInputs(n).some((i) => !n.inputs[i] || n.inputs[i]!.initializer || (hostFed.has(n.inputs[i]!.name) && !hostOk.includes(i)))) continue;
    // A value of unknown type cannot cross into an ORT segment.
    if (n.outputs.some((o) => !o.type)) continue;
    const r = rule.read(n);
    if (!('why' in r)) can.set(n, { name: rule.name, attrs: r.attrs });
  }
  const ours = (m: Node) => calls.has(m) || absorbedBy.has(m);
  const fromKernels = new Set<Node>();
  for (const n of g.nodes)
    if (can.has(n) && glueRead(n).every((v) => v!.isGraphInput() || (v!.producer && (ours(v!.producer) || fromKernels.has(v!.producer)))))
      fromKernels.add(n);
  const toKernels = new Set<Node>();
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (can.has(n) && n.outputs.every((o) => o.uses().every((u) => u.node.graph === g && (ours(u.node) || toKernels.has(u.node))))) toKernels.add(n);
  }
  const used = (v: Value) => (v.useCount > 0 || v.isGraphOutput() ? v.name : null);
  for (const [n, c] of can)
    if (fromKernels.has(n) || toKernels.has(n))
      calls.set(n, { op: c.name, node: n.label, inputs: glueRead(n).map((v) => v!.name), outputs: n.outputs.map(used), attrs: c.attrs });
}

/** The inputs of `n` its glue call reads (glueInputs). */
export const glueRead = (n: Node) => glueInputs(n).map((i) => n.inputs[i]);
