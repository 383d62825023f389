/**
 * Test helpers of the fusion rules (fuse-*.test.ts): build a small model with the op builder, run
 * a fusion pass, attach the fused ops' portable bodies and compare every output with the
 * unfused model in onnxruntime-node (graph optimisations disabled, seeded random inputs).
 */
import { ensureFunctions } from '../custom-ops/functions.js';
import { relErr } from '../custom-ops/testing.js';
import { checkModel } from '../src/ir/checker.js';
import { createModel, GraphBuilder } from '../src/ir/builder.js';
import type { Model, Value } from '../src/ir/graph.js';
import type { Dim } from '../src/ir/types.js';
import { newContext, type ExplainEntry, type Pass, type PassResult } from '../src/rewrite/pass.js';
import { dce } from './dce.js';
import { opCounts, randomFeeds, runOrt } from '../src/rewrite/testing.js';

export interface InputDecl {
  name: string;
  elem: number;
  shape: Dim[];
}

/** A model (default opset 20) with these inputs; `body` returns the outputs. */
export function buildModel(inputs: InputDecl[], body: (b: GraphBuilder, ...xs: Value[]) => Value[], opset = 20): Model {
  const m = createModel({ opset });
  const b = new GraphBuilder(m.graph);
  const xs = inputs.map((i) => b.input(i.name, i.elem, i.shape));
  body(b, ...xs).forEach((y, i) => b.output(y, `y${i}`));
  return m;
}

export interface FusionRun {
  result: PassResult;
  second: PassResult;
  explanations: ExplainEntry[];
  problems: unknown[];
  /** Op histogram of the main graph after the pass. */
  ops: Record<string, number>;
  /** Per output: max |fused − original| / max |original|. */
  errors: number[];
}

/**
 * Run `pass` on `m` (with --explain) and dce, check the model, attach the 'cpu' bodies and compare the
 * outputs with the original's on seeded random feeds; a second run of the pass must change nothing.
 */
export async function fuseAndCompare(m: Model, pass: Pass, opts: { seed?: number; dims?: Record<string, number> } = {}): Promise<FusionRun> {
  const feeds = randomFeeds(m, opts.seed ?? 1, opts.dims ?? { B: 2, S: 5 });
  const expected = await runOrt(m, feeds);
  const ctx = newContext({}, true);
  const result = pass.run(m, ctx);
  dce.run(m, ctx); // the constants the rule left unread
  const problems = checkModel(m);
  const ops = opCounts(m);
  const second = pass.run(m, newContext());
  ensureFunctions(m, 'cpu');
  const actual = await runOrt(m, feeds);
  const errors = actual.map((t, i) => relErr(Array.from(t.data as Float32Array, Number), Array.from(expected[i].data as Float32Array, Number)));
  return { result, second, explanations: ctx.explanations, problems, ops, errors };
}
