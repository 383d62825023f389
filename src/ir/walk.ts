/**
 * The one graph walk: a graph, then the graphs nested in its nodes' attributes (Loop/If/Scan
 * bodies), recursively, pre-order; for a model, the main graph and the chosen function bodies,
 * each with its nested graphs.
 */
import type { Graph, Model, ModelFunction } from './graph.js';

/** `g` and every graph nested in its nodes' attributes, pre-order (a graph before its subgraphs). */
export function nestedGraphs(g: Graph): Graph[] {
  const out: Graph[] = [];
  const walk = (h: Graph): void => {
    out.push(h);
    for (const n of h.nodes) for (const sg of n.subgraphs()) walk(sg);
  };
  walk(g);
  return out;
}

export interface GraphWalk {
  /** Include the main graph (default true). */
  main?: boolean;
  /** Model-local function bodies to include: all (true), none (false, the default), or those `f` selects. */
  functions?: boolean | ((f: ModelFunction) => boolean);
  /** Include nested graphs (Loop/If/Scan bodies; default true). */
  subgraphs?: boolean;
}

/** The graphs of `model`: main graph first, then function bodies in model order (see {@link GraphWalk}). */
export function modelGraphs(model: Model, opts: GraphWalk = {}): Graph[] {
  const pick = opts.functions ?? false;
  const roots = [
    ...(opts.main ?? true ? [model.graph] : []),
    ...model.functions.filter((f) => (typeof pick === 'function' ? pick(f) : pick)).map((f) => f.body),
  ];
  return opts.subgraphs ?? true ? roots.flatMap(nestedGraphs) : roots;
}
