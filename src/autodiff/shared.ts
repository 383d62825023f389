/**
 * Several input gradients from one backward node. The engine calls a rule's GradFns one input at a
 * time, handing each the same {@link GradContext} for a given forward node; `sharedGrads` builds the
 * node on the first call and lets every GradFn read its own output of it. When only some inputs
 * need a gradient (a frozen weight), the node is still emitted once and the other outputs go unused.
 */
import type { Value } from '../ir/graph.js';
import type { GradContext, GradFn } from './types.js';

/**
 * `build` makes the backward node(s) once per forward node and backward pass and returns one value
 * per input (undefined: no gradient); the result maps an input index to the GradFn reading it.
 */
export function sharedGrads(build: (g: GradContext) => (Value | undefined)[]): (input: number) => GradFn {
  const built = new WeakMap<GradContext, (Value | undefined)[]>();
  const outputs = (g: GradContext): (Value | undefined)[] => {
    let v = built.get(g);
    if (!v) built.set(g, (v = build(g)));
    return v;
  };
  return (input) => (g) => outputs(g)[input];
}
