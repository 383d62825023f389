/**
 * The glue kernels (src/webgpu/glue.ts, src/runtime/webgpu/glue.ts): Add with broadcasting,
 * Transpose and the embedding gradient's ScatterND-add (onto zeros, and onto data in place or into
 * a copy) against float64 references on a real device; in the stage plan, the standard ops between fused-op kernels join the kernel groups (the
 * tiny Qwen2 step with every op fused runs in 1 ORT segment instead of 21) without cutting an ORT
 * segment in two; the step's loss and every gradient equal the plan without glue; 20 steps keep
 * the GPU memory flat (views share buffers and hand them back once).
 */
import { describe, expect, it } from 'vitest';
import { FUSED_OPS } from '../custom-ops/registry.js';
import { buildQwen2 } from '../models/qwen2.js';
import { TINY } from '../models/config.js';
import { batches, split } from '../src/data/batches.js';
import { mobyDick } from '../src/data/corpus.js';
import { getTokenizer } from '../src/data/tokenizer.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import type { Value } from '../src/ir/graph.js';
import type { GpuValue, KernelCall } from '../src/ops/kernel.js';
import { inferShapes } from '../src/ir/infer/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { loadFile } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/schema.js';
import { prepareTraining } from '../src/runtime/session.js';
import { runTraining, type TrainOptions } from '../src/runtime/train.js';
import { GLUE_BY_OP, GLUE_KERNELS } from '../src/runtime/webgpu/glue.js';
import { nodeOrtWeb } from '../src/runtime/webgpu/ort-web-node.js';
import { splitStages } from '../src/runtime/webgpu/stage-split.js';
import { parseKernels, webgpuGraph } from '../src/runtime/webgpu/training-spec.js';
import { addBroadcast, joinBlocks, scatterAdd, transpose } from '../src/webgpu/glue.js';
import { expectSameGradients, gpuEnv, randn, relL2, rng } from './webgpu-helpers.js';
import { stepGradients } from './webgpu-step.js';

const env = await gpuEnv();
const SHAPE = { batch: 2, seq: 32 };
const count = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** Element of row-major `dims` at multi-index `ix`. */
const at = (x: Float32Array, dims: readonly number[], ix: number[]) => x[ix.reduce((o, c, k) => o * dims[k] + c, 0)];
const unflat = (i: number, dims: readonly number[]) => {
  const ix = new Array<number>(dims.length);
  for (let k = dims.length - 1; k >= 0; k--) { ix[k] = i % dims[k]; i = Math.floor(i / dims[k]); }
  return ix;
};

describe.skipIf(!env.ctx)('glue kernels on the device (dawn.node)', () => {
  const ctx = env.ctx!;
  const r = rng(3);
  const read = (b: GPUBuffer, n: number) => ctx.readF32(b, n);

  it.each([
    [[2, 3, 5], [2, 3, 5]],
    [[4, 1, 7], [3, 1]],
    [[6], [5, 1]],
    [[1, 2, 1, 3, 1, 2], [2, 2, 1, 3, 4, 1]],
    [[2, 64, 17], [17]],
  ])('Add %j + %j broadcasts like numpy (float64 reference)', async (da, db) => {
    const a = randn(r, count(da)), b = randn(r, count(db));
    const out = addBroadcast(ctx, { buffer: ctx.upload('a', a), dims: da }, { buffer: ctx.upload('b', b), dims: db });
    const got = await read(out.buffer, count(out.dims));
    const rank = Math.max(da.length, db.length);
    const want = new Float64Array(count(out.dims)).map((_, i) => {
      const ix = unflat(i, out.dims);
      const pick = (d: number[]) => ix.slice(rank - d.length).map((c, k) => (d[k] === 1 ? 0 : c));
      return at(a, da, pick(da)) + at(b, db, pick(db));
    });
    expect(out.dims).toEqual(want.length ? unflatDims(da, db) : []);
    expect(relL2(got, want)).toBeLessThan(1e-7);
  });

  it('Add in place into either operand', async () => {
    const a = randn(r, 24), b = randn(r, 24);
    const ba = ctx.upload('a', a), bb = ctx.upload('b', b);
    addBroadcast(ctx, { buffer: ba, dims: [4, 6] }, { buffer: bb, dims: [4, 6] }, ba);
    expect(await read(ba, 24)).toEqual(a.map((x, i) => Math.fround(x + b[i])));
    const c = randn(r, 6);
    addBroadcast(ctx, { buffer: ctx.upload('c', c), dims: [6] }, { buffer: bb, dims: [4, 6] }, bb);
    expect(await read(bb, 24)).toEqual(b.map((x, i) => Math.fround(c[i % 6] + x)));
  });

  it.each([
    [[2, 3, 4, 5], [0, 2, 1, 3]],
    [[3, 7], undefined],
    [[2, 1, 5, 3], [3, 2, 0, 1]],
    [[4, 4, 2], [0, 1, 2]],
  ])('Transpose %j by %j', async (dims, perm) => {
    const x = randn(r, count(dims));
    const out = transpose(ctx, { buffer: ctx.upload('x', x), dims }, perm);
    const p = perm ?? dims.map((_, i) => dims.length - 1 - i);
    expect(out.dims).toEqual(p.map((j) => dims[j]));
    const got = await read(out.buffer, x.length);
    const want = new Float32Array(x.length).map((_, i) => {
      const ix = unflat(i, out.dims);
      const src = new Array<number>(dims.length);
      p.forEach((j, k) => { src[j] = ix[k]; });
      return at(x, dims, src);
    });
    expect(got).toEqual(want);
  });

  it.each([
    [50, 17, 64],
    [7, 3, 20],
  ])('ScatterND add onto zeros [%i, %i] from %i rows: repeated, negative and out-of-range indices (float64 reference; fp32 sums in row order, bit for bit)', async (v, h, n) => {
    // Rows 0-9 all go to row 3 (half of them as 3 − V), the rest at random over [−V, V); three
    // indices outside [−V, V) add nothing.
    const idx = Array.from({ length: n }, (_, i) => (i < 10 ? (i % 2 ? 3 : 3 - v) : Math.floor(r() * 2 * v) - v));
    idx[n - 1] = v;
    idx[n - 2] = -v - 1;
    idx[n - 3] = 2 ** 40;
    const u = randn(r, n * h);
    // One row more than V: nothing may be written past the output.
    const out = ctx.buffer('out', (v + 1) * h * 4);
    scatterAdd(ctx, ctx.upload('idx', BigInt64Array.from(idx.map(BigInt))), ctx.upload('u', u), out, { n, v, h });
    const want = new Float64Array(v * h), sequential = new Float32Array(v * h);
    idx.forEach((k, i) => {
      if (k < -v || k >= v) return;
      const row = k < 0 ? k + v : k;
      for (let j = 0; j < h; j++) {
        want[row * h + j] += u[i * h + j];
        sequential[row * h + j] = Math.fround(sequential[row * h + j] + u[i * h + j]);
      }
    });
    const all = await read(out, (v + 1) * h), got = all.slice(0, v * h);
    expect(relL2(got, want)).toBeLessThan(1e-6);
    expect(got).toEqual(sequential);
    expect(all.slice(v * h)).toEqual(new Float32Array(h));
    expect(got.slice(3 * h, 4 * h).every((x) => x !== 0)).toBe(true);
  });

  const rd = rng(11);
  const scatterKernel = GLUE_KERNELS.get('scatterAdd')!;

  it.each([
    [50, 17, 64, true],
    [50, 17, 64, false],
    [7, 3, 20, true],
    [7, 3, 20, false],
  ])('ScatterND add onto data [%i, %i] from %i rows, in place %s (the glue call): repeated, negative and out-of-range indices (float64 reference; fp32 sums from the data in row order, bit for bit)', async (v, h, n, inPlace) => {
    // Rows 0-9 all go to row 3 (half of them as 3 − V), the rest at random over [−V, V); three
    // indices outside [−V, V) add nothing.
    const idx = Array.from({ length: n }, (_, i) => (i < 10 ? (i % 2 ? 3 : 3 - v) : Math.floor(rd() * 2 * v) - v));
    idx[n - 1] = v;
    idx[n - 2] = -v - 1;
    idx[n - 3] = 2 ** 40;
    const data = randn(rd, v * h), u = randn(rd, n * h);
    const input = (buffer: GPUBuffer, dims: number[], type = 'float32'): GpuValue => ({ buffer, dims, type });
    const d = input(ctx.upload('data', data), [v, h]);
    const call: KernelCall = { op: 'scatterAdd', node: 'ScatterND (test)', inputs: ['data', 'idx', 'upd'], outputs: ['y'], attrs: { dims: `${v},${h}`, zeros: 0 } };
    const out = scatterKernel.run(ctx, call, [d, input(ctx.upload('idx', BigInt64Array.from(idx.map(BigInt))), [n, 1], 'int64'), input(ctx.upload('u', u), [n, h])], () => inPlace);
    const y = out.outputs[0]!;
    expect(y.dims).toEqual([v, h]);
    expect(y.buffer === d.buffer).toBe(inPlace);
    expect(out.reused).toBe(inPlace ? 0 : undefined);
    const want = Float64Array.from(data), sequential = Float32Array.from(data);
    const named = new Set<number>();
    idx.forEach((k, i) => {
      if (k < -v || k >= v) return;
      const row = k < 0 ? k + v : k;
      named.add(row);
      for (let j = 0; j < h; j++) {
        want[row * h + j] += u[i * h + j];
        sequential[row * h + j] = Math.fround(sequential[row * h + j] + u[i * h + j]);
      }
    });
    const got = await ctx.readF32(y.buffer, v * h);
    expect(relL2(got, want)).toBeLessThan(1e-6);
    expect(got).toEqual(sequential);
    // Rows no index names keep the data's values; copying leaves the data as it was.
    for (let row = 0; row < v; row++) if (!named.has(row)) expect(got.slice(row * h, (row + 1) * h)).toEqual(data.slice(row * h, (row + 1) * h));
    expect(named.size).toBeLessThan(v);
    if (!inPlace) expect(await ctx.readF32(d.buffer, v * h)).toEqual(data);
  });

  it('ScatterND add onto data: the data must have the output shape', () => {
    const call: KernelCall = { op: 'scatterAdd', node: 'ScatterND (test)', inputs: ['data', 'idx', 'upd'], outputs: ['y'], attrs: { dims: '4,3', zeros: 0 } };
    const f = (n: number, dims: number[]): GpuValue => ({ buffer: ctx.upload('x', new Float32Array(n)), dims, type: 'float32' });
    const idx: GpuValue = { buffer: ctx.upload('i', new BigInt64Array(2)), dims: [2, 1], type: 'int64' };
    expect(() => scatterKernel.run(ctx, call, [f(15, [5, 3]), idx, f(6, [2, 3])], () => true)).toThrow(/data \[5,3\] is not of the output's shape \[4,3\]/);
  });

  it('Concat, Split and Slice (the glue calls, attributes read from the nodes): block copies along any axis, unused outputs not made', async () => {
    const m = createModel({ opset: 20 });
    const g = new GraphBuilder(m.graph);
    const F = DataType.FLOAT;
    const [A, B] = [[2, 3, 4], [2, 5, 4]];
    const a = g.input('a', F, A), b = g.input('b', F, B);
    const cat = g.op.Concat(a, b, { axis: -2 });
    const sizes = g.initializer('sizes', Tensor.from(DataType.INT64, [3], [1n, 2n, 1n]));
    const parts = g.op.call('Split', [cat, sizes], { axis: 2 }, { outputs: 3 });
    const cut = g.op.Slice(cat, g.initializer('s', Tensor.from(DataType.INT64, [1], [2n])), g.initializer('e', Tensor.from(DataType.INT64, [1], [6n])), g.initializer('ax', Tensor.from(DataType.INT64, [1], [1n])));
    for (const v of [...parts, cut]) g.output(v);
    inferShapes(m);
    const x = randn(r, count(A)), y = randn(r, count(B));
    const gv = (buffer: GPUBuffer, dims: number[]): GpuValue => ({ buffer, dims, type: 'float32' });
    const callOf = (op: string, outputs: (string | null)[]) => {
      const n = m.graph.nodes.find((k) => k.opType === op)!;
      const rule = GLUE_BY_OP.get(op)!;
      const rd2 = rule.read(n);
      if ('why' in rd2) throw new Error(rd2.why);
      return { rule, call: { op: rule.name, node: n.label, inputs: [], outputs, attrs: rd2.attrs } as KernelCall };
    };
    // Concat along axis 1 of [2, 3, 4] and [2, 5, 4] → [2, 8, 4].
    const c = callOf('Concat', ['cat']);
    const catOut = c.rule.run(ctx, c.call, [gv(ctx.upload('a', x), A), gv(ctx.upload('b', y), B)], () => false).outputs[0]!;
    expect(catOut.dims).toEqual([2, 8, 4]);
    const want = new Float32Array(64).map((_, i) => { const [i0, i1, i2] = unflat(i, [2, 8, 4]); return i1 < 3 ? at(x, A, [i0, i1, i2]) : at(y, B, [i0, i1 - 3, i2]); });
    expect(await read(catOut.buffer, 64)).toEqual(want);
    // Split along the last axis into 1, 2, 1 columns; the middle output unused.
    const sp = callOf('Split', ['p0', null, 'p2']);
    const outs = sp.rule.run(ctx, sp.call, [catOut], () => false).outputs;
    expect(outs[1]).toBeUndefined();
    expect(outs[0]!.dims).toEqual([2, 8, 1]);
    expect(outs[2]!.dims).toEqual([2, 8, 1]);
    expect(await read(outs[0]!.buffer, 16)).toEqual(want.filter((_, i) => i % 4 === 0));
    expect(await read(outs[2]!.buffer, 16)).toEqual(want.filter((_, i) => i % 4 === 3));
    // Slice rows 2..5 of axis 1.
    const sl = callOf('Slice', ['cut']);
    const cutOut = sl.rule.run(ctx, sl.call, [catOut], () => false).outputs[0]!;
    expect(cutOut.dims).toEqual([2, 4, 4]);
    expect(await read(cutOut.buffer, 32)).toEqual(want.filter((_, i) => { const j = unflat(i, [2, 8, 4])[1]; return j >= 2 && j < 6; }));
    // What the glue leaves to ORT: a Slice cutting two axes, a step other than 1.
    const two = g.op.Slice(cat, g.initializer('s2', Tensor.from(DataType.INT64, [2], [0n, 1n])), g.initializer('e2', Tensor.from(DataType.INT64, [2], [1n, 3n])), g.initializer('ax2', Tensor.from(DataType.INT64, [2], [0n, 1n])));
    const stepped = g.op.Slice(cat, g.initializer('s3', Tensor.from(DataType.INT64, [1], [0n])), g.initializer('e3', Tensor.from(DataType.INT64, [1], [8n])), g.initializer('ax3', Tensor.from(DataType.INT64, [1], [1n])), g.initializer('st3', Tensor.from(DataType.INT64, [1], [2n])));
    g.output(two); g.output(stepped);
    inferShapes(m);
    expect(GLUE_BY_OP.get('Slice')!.read(two.producer!)).toEqual({ why: 'it cuts 2 axes (our Slice copies one)' });
    expect(GLUE_BY_OP.get('Slice')!.read(stepped.producer!)).toEqual({ why: 'steps [2] (our Slice copies step 1)' });
  });

  it('joinBlocks / splitBlocks: six parts (one empty) side by side and back, two dispatches of at most four', async () => {
    const rows = 7, cols = [3, 0, 5, 2, 4, 1], total = 15;
    const parts = cols.map((c) => randn(r, rows * c));
    const bufs = parts.map((p, j) => ({ buffer: ctx.upload(`p${j}`, p.length ? p : new Float32Array(1)), cols: cols[j] }));
    const whole = ctx.buffer('whole', rows * total * 4);
    joinBlocks(ctx, bufs, whole, rows, true);
    const want = new Float32Array(rows * total);
    for (let i = 0; i < rows; i++) {
      let at = 0;
      cols.forEach((c, j) => { want.set(parts[j].subarray(i * c, (i + 1) * c), i * total + at); at += c; });
    }
    expect(await read(whole, rows * total)).toEqual(want);
    const back = cols.map((c, j) => ({ buffer: ctx.buffer(`b${j}`, Math.max(1, rows * c) * 4), cols: c }));
    joinBlocks(ctx, back, whole, rows, false);
    for (const [j, b] of back.entries()) if (cols[j]) expect(await read(b.buffer, rows * cols[j])).toEqual(parts[j]);
  });

  it('errors name the kernel and the shapes', () => {
    const b = ctx.upload('x', new Float32Array(6));
    expect(() => addBroadcast(ctx, { buffer: b, dims: [2, 3] }, { buffer: b, dims: [2] })).toThrow(/Add: shapes \[2,3\] and \[2\] do not broadcast/);
    expect(() => transpose(ctx, { buffer: b, dims: [2, 3] }, [0, 0])).toThrow(/Transpose: perm \[0,0\] is not a permutation/);
  });
});

/** numpy's broadcast shape, for the expectation above. */
function unflatDims(a: number[], b: number[]): number[] {
  const r = Math.max(a.length, b.length);
  return [...Array(r).keys()].map((i) => Math.max(a[a.length - r + i] ?? 1, b[b.length - r + i] ?? 1));
}

describe('glue in the stage plan of the tiny Qwen2 step', () => {
  const prep = (fuseAttention: boolean) => prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention, target: 'webgpu' });

  it('every op fused + glue: 1 ORT segment (was 21); the Transposes between kernels and the embedding gradient all leave ORT', () => {
    const g = webgpuGraph(prep(true).train, SHAPE);
    const without = splitStages(g, parseKernels('all,glue=ort'), FUSED_OPS)!;
    const withGlue = splitStages(g, parseKernels('all'), FUSED_OPS)!;
    const ops = (s: typeof without) => s.segments.flatMap((m) => m.graph.nodes.map((n) => n.opType));
    console.log(`tiny, all fused: ${without.segments.length} ORT segments without glue, ${withGlue.segments.length} with (${withGlue.plan.steps.filter((s) => s.kind === 'kernel').length} kernel calls)`);
    expect(without.segments.length).toBeGreaterThanOrEqual(15);
    expect(withGlue.segments.length).toBe(1);
    // What stays in ORT, on the host (a CPU segment: test/webgpu-host-prologue.test.ts): the position
    // tables (one Transpose between ORT nodes), the labels' shift and the embedding gradient's
    // indices. The embedding Gather and the gradient's ScatterND are our kernels; the embedding and
    // lm_head are tied, so the scatter adds into linear-CE's weight gradient (passes/scatter-add-into.ts):
    // it reads that, the indices and the updates, and no zeros (an Expand) are made.
    expect(ops(without).filter((o) => o === 'Transpose').length).toBeGreaterThan(10);
    expect(ops(withGlue).filter((o) => o === 'Transpose')).toEqual(['Transpose']);
    expect(ops(withGlue)).not.toContain('Gather');
    expect(withGlue.plan.hostSegments).toEqual([0]);
    expect(ops(withGlue)).toContain('Where');
    expect(ops(withGlue)).not.toContain('ScatterND');
    expect(ops(withGlue)).not.toContain('Expand');
    expect(withGlue.plan.steps.filter((s) => s.kind === 'kernel' && s.call.op === 'scatterAdd').map((s) => s.kind === 'kernel' && s.call.inputs.length)).toEqual([3]);
  });

  it('ScatterND is glue when it adds onto zeros (Expand or ConstantOfShape of 0: made by the kernel) or onto float32 data, with a static shape', () => {
    const why = (data: (b: GraphBuilder) => Value, attrs: Record<string, string> = { reduction: 'add' }) => {
      const m = createModel({ opset: 18 });
      const b = new GraphBuilder(m.graph);
      const idx = b.input('idx', DataType.INT64, [4, 1]), upd = b.input('upd', DataType.FLOAT, [4, 3]);
      b.output(b.op.ScatterND(data(b), idx, upd, attrs), 'y');
      inferShapes(m);
      const r = GLUE_BY_OP.get('ScatterND')!.read(m.graph.nodes.at(-1)!);
      return 'why' in r ? r.why : r.attrs;
    };
    const shape = (b: GraphBuilder) => b.constant([5, 3]);
    // Expand(0) / ConstantOfShape(0) -> the kernel's own zeroed [5, 3]
    expect(why((b) => b.op.Expand(b.constant(0, { dtype: DataType.FLOAT }), shape(b)))).toEqual({ dims: '5,3', zeros: 1 });
    expect(why((b) => b.op.ConstantOfShape(shape(b), { value: Tensor.from(DataType.FLOAT, [1], [0]) }))).toEqual({ dims: '5,3', zeros: 1 });
    // Other float32 data -> read by the call (in place or copied)
    expect(why((b) => b.op.Expand(b.constant(1, { dtype: DataType.FLOAT }), shape(b)))).toEqual({ dims: '5,3', zeros: 0 });
    expect(why((b) => b.input('w', DataType.FLOAT, [5, 3]))).toEqual({ dims: '5,3', zeros: 0 });
    expect(why((b) => b.input('w', DataType.DOUBLE, [5, 3]))).toMatch(/neither float32 nor zeros/);
    expect(why((b) => b.op.Expand(b.constant(0, { dtype: DataType.FLOAT }), shape(b)), { reduction: 'none' })).toMatch(/reduction is 'none'/);
  });

  it('glue never cuts an ORT segment: the default plan (attention in ORT) has no more segments with glue', () => {
    const g = webgpuGraph(prep(false).train, SHAPE);
    for (const k of ['default', 'default,mlp,linear', 'all'])
      expect(splitStages(g, parseKernels(`${k},glue`), FUSED_OPS)!.segments.length, k).toBeLessThanOrEqual(splitStages(g, parseKernels(`${k},glue=ort`), FUSED_OPS)!.segments.length);
  });

  it('the index plumbing of input_ids and labels for our kernels stays in the first ORT segment; for an ORT node it moves with it', () => {
    const g = webgpuGraph(prep(false).train, SHAPE);
    const segmentOf = (s: NonNullable<ReturnType<typeof splitStages>>, op: string) => s.segments.findIndex((m) => m.graph.nodes.some((n) => n.opType === op));
    // Attention in ORT: 5 segments, the first on the host (position tables: the embedding Gather is
    // our kernel). Readers of the batch are all in the first segment on the GPU.
    const s = splitStages(g, parseKernels('default'), FUSED_OPS)!;
    expect(s.segments.length).toBeGreaterThan(2);
    expect(s.plan.hostSegments).toEqual([0]);
    const batchReaders = s.segments.map((m) => m.graph.nodes.filter((n) => n.inputs.some((v) => v?.name === 'input_ids' || v?.name === 'labels')).length);
    expect(batchReaders[1]).toBeGreaterThanOrEqual(4);
    expect(batchReaders.filter((_, i) => i !== 1)).toEqual(batchReaders.slice(1).map(() => 0));
    // The scatter in ORT (no glue): the indices are made in its segment, the last.
    const o = splitStages(g, parseKernels('default,glue=ort'), FUSED_OPS)!;
    expect(segmentOf(o, 'Less')).toBe(segmentOf(o, 'ScatterND'));
    expect(segmentOf(o, 'ScatterND')).toBe(o.segments.length - 1);
  });
});

describe.skipIf(!env.ctx)('webgpu step with glue kernels (dawn.node)', () => {
  const text = mobyDick().slice(0, 100_000);

  it.each([false, true])('fuseAttention %s: loss and every gradient equal the plan without glue', async (fuseAttention) => {
    const tok = await getTokenizer('bytes');
    const b = batches(split(tok.encode(text), 32).train, 2, 32, 5).next().value!;
    const prep = () => prepareTraining(buildQwen2(TINY, { seed: 1 }), { fuse: true, fuseMlp: true, fuseLinear: true, fuseAttention, target: 'webgpu' });
    const glue = await stepGradients(prep(), parseKernels('all'), SHAPE, b);
    const plain = await stepGradients(prep(), parseKernels('all,glue=ort'), SHAPE, b);
    const worst = expectSameGradients(glue, plain, 1e-5);
    console.log(`glue vs no glue (attention fused: ${fuseAttention}): loss ${glue.loss} vs ${plain.loss}, worst gradient relative L2 ${worst.toExponential(2)}`);
  });

  it('a default-settings torch export (GQA) under the webgpu defaults: attention fused, 1 ORT segment, the cpu losses within 1e-5', async () => {
    const file = new URL('../models/fixtures/default/qwen2-default-gqa.onnx', import.meta.url).pathname;
    const p = prepareTraining(loadFile(file), { fuse: true, fuseMlp: true, fuseAttention: true, fuseLinear: true, target: 'webgpu' });
    expect(p.train.graph.nodes.filter((n) => n.opType === 'CausalAttention').length).toBeGreaterThan(0);
    expect(splitStages(webgpuGraph(p.train, { batch: 2, seq: 16 }), parseKernels('default'), FUSED_OPS)!.segments).toHaveLength(1);
    const tok = await getTokenizer('bytes');
    const opts: TrainOptions = { steps: 3, batch: 2, seq: 16, lr: 1e-3, seed: 5, fuse: true };
    const gpu = await runTraining(loadFile(file), text.slice(0, 50_000), tok, { ...opts, backend: 'webgpu' });
    const cpu = await runTraining(loadFile(file), text.slice(0, 50_000), tok, { ...opts, backend: 'cpu' });
    console.log(`default export, webgpu defaults vs cpu: ${gpu.map((r) => r.loss.toFixed(6)).join(' ')} vs ${cpu.map((r) => r.loss.toFixed(6)).join(' ')}`);
    gpu.forEach((r, i) => expect(Math.abs(r.loss - cpu[i].loss)).toBeLessThan(1e-5));
  });

  it('20 steps with every op and the glue on our kernels, reused outputs poisoned: cpu losses within 1e-4, GPU memory flat', async () => {
    const tok = await getTokenizer('bytes');
    const { meter } = await nodeOrtWeb();
    const live: number[] = [];
    const opts: TrainOptions = { steps: 20, batch: 2, seq: 32, lr: 3e-3, seed: 5, fuse: true, fuseAttention: true, fuseLinear: true, warmup: 2 };
    // Reused outputs that a kernel writes in full are not cleared: poisoned with NaN here, so a kernel that reads one before writing it fails the comparison.
    process.env.ORTFUSE_POISON_REUSED = '1';
    const gpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...opts, backend: 'webgpu', kernels: 'all' }, { onStep: () => void live.push(meter.live) }).finally(() => delete process.env.ORTFUSE_POISON_REUSED);
    const cpu = await runTraining(buildQwen2(TINY, { seed: 1 }), text, tok, { ...opts, backend: 'cpu' });
    const deltas = gpu.map((x, i) => Math.abs(x.loss - cpu[i].loss));
    console.log(`glue, all kernels vs cpu |Δloss|: max ${Math.max(...deltas).toExponential(1)}; live GPU MiB ${(live[4] / 2 ** 20).toFixed(2)} at step 5, ${(live[18] / 2 ** 20).toFixed(2)} at step 19`);
    for (const d of deltas) expect(d).toBeLessThan(1e-4);
    expect(gpu[19].loss).toBeLessThan(gpu[0].loss - 1.5);
    expect(live[18]).toBe(live[4]);
  });
});
