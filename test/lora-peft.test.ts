/**
 * LoRA (src/params/lora.ts) against PEFT 0.21 on the default-settings torch exports: starting from
 * PEFT's own saved adapter (`lora: { init }`, as `--lora-init DIR`), the gradients of every A and B
 * match PEFT's (rel L2 < 1e-3) and 50 AdamW steps follow PEFT's losses within 1e-3; the base weights
 * are frozen (not inputs of the step graph, no gradient, no AdamW moments). References:
 * models/fixtures/lora (models/export/peft_lora.py, fp32 torch on CPU).
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadFile } from '../src/onnx/io.js';
import { prepareTraining } from '../src/runtime/session.js';
import { CpuTrainer } from '../src/runtime/trainer.js';
import { loadSafetensors } from '../src/params/safetensors.js';
import { resolveLora } from '../src/params/lora-config.js';
import { loadAdapterDir } from '../src/params/adapter-dir.js';
import type { Batch } from '../src/data/batches.js';
import { relL2 } from './numerics.js';

const FIX = new URL('../models/fixtures/default/', import.meta.url).pathname;
const LORA = new URL('../models/fixtures/lora/', import.meta.url).pathname;

type Rows = { input_ids: number[][]; labels: number[][] };
const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const i64 = (rows: number[][]) => BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
const batch = (b: Rows): Batch => ({ inputIds: i64(b.input_ids), labels: i64(b.labels), batch: b.input_ids.length, seq: b.input_ids[0].length });

/** The step graph of `stem` with PEFT's initial adapter. */
function prepare(stem: string, fuse: boolean) {
  const lora = resolveLora({ init: loadAdapterDir(`${LORA}${stem}-lora`) });
  return prepareTraining(loadFile(`${FIX}${stem}.onnx`), { fuse, target: 'cpu', lora });
}

const peftKey = (name: string) => `grad.base_model.model.${name}`;

describe('LoRA gradients against PEFT', () => {
  it.each([['qwen2-default-tied', true], ['qwen2-default-tied', false], ['qwen2-default-gqa', true]] as const)('%s (fused %s): every A and B (rel L2 < 1e-3), only they train', async (stem, fuse) => {
    const ref = json(`${LORA}${stem}-lora.json`);
    const grads = loadSafetensors(`${LORA}${stem}-lora.safetensors`).tensors;
    const prepared = prepare(stem, fuse);
    const names = [...grads.keys()].map((k) => k.slice('grad.base_model.model.'.length)).sort();
    expect([...prepared.parameters].sort()).toEqual(names);
    expect(prepared.lora!.modules).toHaveLength(names.length / 2);
    // Frozen: no base weight is an input of the step graph or has a gradient output.
    const g = prepared.train.graph;
    expect(g.inputs.map((v) => v.name).filter((n) => !names.includes(n)).sort()).toEqual(['input_ids', 'labels']);
    expect(g.outputs.map((v) => v.name).filter((n) => n !== 'loss').sort()).toEqual(names.map((n) => `grad.${n}`).sort());
    expect(g.initializers.some((v) => v.name === 'model.layers.0.self_attn.q_proj.weight')).toBe(true);
    const t = await CpuTrainer.create(prepared.train, prepared.initial, { optimizer: { lr: 1e-3 }, schedule: { lr: 1e-3, warmupSteps: 0, totalSteps: 1 } });
    const { loss, grads: got } = await t.lossAndGrads(batch(json(`${FIX}${stem}.json`).inputs));
    expect(Math.abs(loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    let worst = 0;
    for (const n of names) {
      const err = relL2(got.get(n)!, grads.get(peftKey(n))!.data);
      worst = Math.max(worst, err);
      expect(err, n).toBeLessThan(1e-3);
    }
    // AdamW state: moments only for A and B.
    await t.train(batch(json(`${FIX}${stem}.json`).inputs));
    const state = t.state({});
    expect([...state.params.keys()].sort()).toEqual(names);
    console.log(`${stem} fused=${fuse}: ${names.length} adapter tensors, loss ${loss} (PEFT ${ref.loss}), worst gradient rel L2 ${worst.toExponential(2)}`);
    await t.release();
  });
});

describe('50 LoRA AdamW steps against PEFT', () => {
  it.each([['qwen2-default-tied', true], ['qwen2-default-gqa', true], ['qwen2-default-gqa', false]] as const)('%s (fused %s): every step\'s loss within 1e-3', async (stem, fuse) => {
    const ref = json(`${LORA}${stem}-lora.json`);
    const s = ref.run.settings;
    const prepared = prepare(stem, fuse);
    const t = await CpuTrainer.create(prepared.train, prepared.initial, {
      optimizer: { lr: s.lr, weightDecay: s.weight_decay, maxGradNorm: s.clip },
      schedule: { lr: s.lr, warmupSteps: s.warmup, totalSteps: s.steps, minRatio: s.min_ratio },
    });
    const losses: number[] = [];
    for (const b of json(`${FIX}${stem}.json`).run.batches as Rows[]) losses.push((await t.train(batch(b))).loss);
    const want = ref.run.losses as number[];
    const worst = Math.max(...losses.map((l, i) => Math.abs(l - want[i])));
    console.log(`${stem} fused=${fuse}: 50 LoRA steps ${losses[0].toFixed(5)} -> ${losses[49].toFixed(5)} (PEFT ${want[0].toFixed(5)} -> ${want[49].toFixed(5)}), worst |dloss| ${worst.toExponential(2)}`);
    for (let i = 0; i < 50; i++) expect(Math.abs(losses[i] - want[i]), `step ${i + 1}`).toBeLessThan(1e-3);
    expect(losses[49]).toBeLessThan(losses[0] - 0.1);
    await t.release();
  }, 120_000);
});
