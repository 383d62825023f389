/**
 * The `precision` attribute through the training-graph builder: every fused node the gradient
 * rules emit, and every form swap (SwiGLUMLP → SwiGLUMLPKeep in-forward, SwiGLUMLPKeepGrad →
 * SwiGLUMLPGrad by the recompute pass, FusedLinearCrossEntropy → ...WithGrad), carries the forward
 * node's 'f16'; the three training graphs give the same gradients on onnxruntime-node, and not
 * those of the 'fp32' graph. A bad value is an error naming the node.
 */
import { describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { buildTrainingGraph, type TrainingGraphOptions } from '../src/autodiff/training.js';
import { createModel, GraphBuilder, type Model } from '../src/ir/index.js';
import { Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/schema.js';
import { FUSED_OPS } from './registry.js';
import { ensureFunctions } from './index.js';
import { f32, i64, randn, relErr, rng, runOrt } from './testing.js';
import { swigluMlpGradKernel, swigluMlpKeepKernel, swigluMlpKernel } from './swiglu-mlp/webgpu/entry.js';
import { flceKernel } from './fused-linear-cross-entropy/webgpu/entry.js';

const F = DataType.FLOAT;
const [N, H, I, V] = [12, 8, 20, 40];
const r = rng(3);
const weights = {
  'mlp.gate_proj.weight': [randn(r, I * H, 0.4), [I, H]],
  'mlp.up_proj.weight': [randn(r, I * H, 0.4), [I, H]],
  'mlp.down_proj.weight': [randn(r, H * I, 0.4), [H, I]],
  'lm_head.weight': [randn(r, V * H, 0.4), [V, H]],
} as const;
const x = randn(r, N * H);
const labels = Array.from({ length: N }, (_, i) => (i === 3 ? -100 : Math.floor(r() * V)));

/** x → x + SwiGLUMLP(x) → FusedLinearCrossEntropy, both with `precision` (none when undefined). */
function forward(precision?: string): Model {
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const xin = b.input('x', F, [N, H]);
  const y = b.input('labels', DataType.INT64, [N]);
  const w = Object.fromEntries(Object.entries(weights).map(([name, [data, dims]]) => [name, b.initializer(name, Tensor.from(F, [...dims], Array.from(data)))]));
  const attrs = precision === undefined ? {} : { precision };
  const [mlp] = b.op.call('SwiGLUMLP', [xin, w['mlp.gate_proj.weight'], w['mlp.up_proj.weight'], w['mlp.down_proj.weight']], attrs, { domain: 'ai.ortfuse', name: 'mlp' });
  const [loss] = b.op.call('FusedLinearCrossEntropy', [b.op.Add(xin, mlp), w['lm_head.weight'], null, y], attrs, { domain: 'ai.ortfuse', name: 'flce' });
  b.output(loss, 'loss');
  return m;
}

function train(precision: string | undefined, opts: Partial<TrainingGraphOptions> = {}): Model {
  const t = buildTrainingGraph(forward(precision), { ops: FUSED_OPS, ...opts });
  ensureFunctions(t, 'cpu');
  return t;
}

const fused = (m: Model) => m.graph.nodes.filter((n) => n.domain === 'ai.ortfuse');

async function gradients(m: Model): Promise<Record<string, Float32Array>> {
  const feeds: Record<string, ort.Tensor> = { x: f32(x, [N, H]), labels: i64(labels, [N]) };
  for (const [name, [data, dims]] of Object.entries(weights)) feeds[name] = f32(data, [...dims]);
  const out = await runOrt(m, feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

describe("precision 'f16' through the training graph", () => {
  const variants: [string, Partial<TrainingGraphOptions>, string[]][] = [
    ['in-forward (default)', {}, ['SwiGLUMLPKeep', 'SwiGLUMLPKeepGrad', 'FusedLinearCrossEntropyWithGrad']],
    ['recomputing MLP form (recompute inOps)', { recompute: { inOps: true } }, ['SwiGLUMLP', 'SwiGLUMLPGrad', 'FusedLinearCrossEntropyWithGrad']],
    ['backward-only rules', { inForward: false }, ['SwiGLUMLP', 'SwiGLUMLPGrad', 'FusedLinearCrossEntropy']],
  ];

  it('every fused node of every form carries the forward nodes\' precision; the gradients agree, and differ from fp32', async () => {
    const got: Record<string, Float32Array>[] = [];
    for (const [name, opts, ops] of variants) {
      const t = train('f16', opts);
      expect(fused(t).map((n) => n.opType).sort(), name).toEqual([...ops].sort());
      for (const n of fused(t)) expect(n.attrString('precision', 'absent'), `${name}: ${n.label}`).toBe('f16');
      if (opts.inForward === false) {
        // The backward-only linear-CE gradient is a Loop of stock ops: its GEMM operands go through float16 there.
        const loop = t.graph.nodes.find((n) => n.opType === 'Loop')!;
        expect([...loop.subgraphs()[0].allNodes()].some((n) => n.opType === 'Cast' && n.attrInt('to') === DataType.FLOAT16), name).toBe(true);
      }
      got.push(await gradients(t));
    }
    const fp32 = await gradients(train(undefined));
    expect(fused(train('fp32')).every((n) => n.attrString('precision') === 'fp32')).toBe(true);
    expect(fused(train(undefined)).every((n) => !n.attr('precision'))).toBe(true);
    for (const k of Object.keys(got[0])) {
      for (const [v, g] of got.entries()) expect(relErr(g[k], got[0][k]), `${k}: ${variants[v][0]} vs in-forward`).toBeLessThan(1e-5);
      expect(relErr(got[0][k], fp32[k]), `${k}: f16 vs fp32`).toBeGreaterThan(1e-5);
      expect(relErr(got[0][k], fp32[k]), `${k}: f16 vs fp32`).toBeLessThan(1e-2);
    }
    expect(Object.keys(got[0]).sort()).toEqual(['grad.lm_head.weight', 'grad.mlp.down_proj.weight', 'grad.mlp.gate_proj.weight', 'grad.mlp.up_proj.weight', 'loss']);
  });

  it('a bad precision value fails naming the node and the value', () => {
    expect(() => train('half')).toThrow(/node 'mlp' \(ai\.ortfuse::SwiGLUMLP\): attribute precision='half' is not one of 'fp32', 'f16'/);
    const m = forward('f16');
    m.graph.nodes.find((n) => n.opType === 'FusedLinearCrossEntropy')!.setAttr({ name: 'precision', type: 'STRING', value: new TextEncoder().encode('bf16') });
    expect(() => buildTrainingGraph(m, { ops: FUSED_OPS })).toThrow(/node 'flce' \(ai\.ortfuse::FusedLinearCrossEntropy(WithGrad)?\): attribute precision='bf16' is not one of 'fp32', 'f16'/);
  });

  it('one linear-CE body serves every caller: callers that disagree on precision are an error', () => {
    const m = forward('f16');
    const b = new GraphBuilder(m.graph);
    const lm = m.graph.findValue('lm_head.weight')!;
    const [second] = b.op.call('FusedLinearCrossEntropy', [m.graph.findValue('x')!, lm, null, m.graph.findValue('labels')!], { precision: 'fp32' }, { domain: 'ai.ortfuse', name: 'flce2' });
    b.output(second, 'loss2');
    expect(() => ensureFunctions(m, 'cpu')).toThrow(/FusedLinearCrossEntropy nodes use different precisions \(f16, fp32\); one body serves them all/);
  });

  it('the WGSL kernels read the precision of the node they run (webgpu backend)', () => {
    const t = train('f16', { inForward: false });
    const node = (op: string) => t.graph.nodes.find((n) => n.opType === op)!;
    expect(swigluMlpKernel.read(node('SwiGLUMLP'))).toEqual({ attrs: { precision: 'f16' } });
    expect(swigluMlpGradKernel.read(node('SwiGLUMLPGrad'))).toEqual({ attrs: { precision: 'f16' } });
    expect(flceKernel.read(node('FusedLinearCrossEntropy'))).toMatchObject({ attrs: { precision: 'f16' } });
    const plain = train(undefined);
    expect(swigluMlpKeepKernel.read(plain.graph.nodes.find((n) => n.opType === 'SwiGLUMLPKeep')!)).toEqual({ attrs: { precision: 'fp32' } });
    node('SwiGLUMLP').setAttr({ name: 'precision', type: 'STRING', value: new TextEncoder().encode('f8') });
    expect(() => swigluMlpKernel.read(node('SwiGLUMLP'))).toThrow(/node 'mlp' \(ai\.ortfuse::SwiGLUMLP\): attribute precision='f8' is not one of 'fp32', 'f16'/);
  });
});
