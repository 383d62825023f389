/** Passes: a named transformation of a model returning what it changed. */
import type { Model } from '../ir/graph.js';

export interface PassResult {
  modified: boolean;
  /** Per-rule (or per-kind) counts, e.g. { 'fuse-swiglu': 24 }. */
  counts: Record<string, number>;
}

/** Why a rule did not fire: its best partial match and the reason it failed. */
export interface ExplainEntry {
  rule: string;
  /** How far the best attempt got (matched pattern nodes / all pattern nodes). */
  matched: number;
  total: number;
  /** The graph node the best attempt was anchored at, if any. */
  anchor?: string;
  reason: string;
}

export interface PassContext {
  /** Collect explanations for rules that matched nothing. */
  explain?: boolean;
  explanations: ExplainEntry[];
  /** Free-form options (e.g. { training: true } for drop-logits). */
  options: Record<string, unknown>;
}

export interface Pass {
  name: string;
  run(model: Model, ctx: PassContext): PassResult;
}

export function newContext(options: Record<string, unknown> = {}, explain = false): PassContext {
  return { explain, explanations: [], options };
}
