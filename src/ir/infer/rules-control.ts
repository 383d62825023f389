/** Inference rules for control flow: If (join of both branches) and Loop (body outputs -> node outputs). */
import { DataType } from '../../onnx/schema.js';
import { formatType, type ValueType } from '../types.js';
import { tt, type InferRule } from './context.js';
import { joinTypes } from './merge.js';

const ifRule: InferRule = (n, c) => {
  const branches = ['then_branch', 'else_branch'].map((name) => c.attrGraph(name));
  const outs = branches.map((g) => (g ? c.inferSubgraph(g, []) : []));
  return n.outputs.map((_, i) => joinTypes(outs[0][i], outs[1][i]));
};

/**
 * Loop(M, cond, v_initial...) with body(iter, cond, v...) -> (cond, v..., scan...). Loop-carried
 * outputs join the initial and the body's types; scan outputs get a leading trip count (M when
 * there is no condition input, else unknown).
 */
const loopRule: InferRule = (n, c) => {
  const body = c.attrGraph('body');
  if (!body) return [];
  const carried = n.inputs.length - 2;
  const head = [tt(DataType.INT64, []), tt(DataType.BOOL, [])];
  // Loop-carried types: iterate join(input, body output) to a fixed point (shapes may change
  // from one iteration to the next), then infer the body for real with the stable types.
  let state: (ValueType | undefined)[] = Array.from({ length: carried }, (_, i) => c.type(2 + i));
  for (let round = 0; ; round++) {
    const probe = c.inferSubgraph(body, [...head, ...state], { tentative: true });
    const next = state.map((t, i) => joinTypes(t, probe[1 + i]));
    if (next.every((t, i) => formatType(t) === formatType(state[i]))) break;
    state = round < 2 ? next : next.map((t) => (t?.kind === 'tensor' ? tt(t.elemType) : t));
    if (round >= 2) break;
  }
  const outs = c.inferSubgraph(body, [...head, ...state]);
  const result: (ValueType | undefined)[] = [];
  for (let i = 0; i < carried; i++) result.push(joinTypes(c.type(2 + i), outs[1 + i]));
  // With no condition input the body's condition is ignored: exactly M iterations.
  const trips = !c.has(1) && c.has(0) ? (c.value(0)?.values[0] ?? null) : null;
  for (let k = 1 + carried; k < outs.length; k++) {
    const t = outs[k];
    result.push(t?.kind === 'tensor' ? tt(t.elemType, t.shape && [trips, ...t.shape]) : undefined);
  }
  return result;
};

/** Rules keyed by op type (default ONNX domain). */
export const CONTROL_RULES: Record<string, InferRule> = { If: ifRule, Loop: loopRule };
