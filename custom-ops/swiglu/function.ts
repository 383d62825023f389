/** Portable body of ai.ortfuse::SwiGLU (math in schema.ts), every target: Mul(Mul(g, Sigmoid(g)), up). */
import type { Value } from '../../src/ir/graph.js';
import type { Body } from '../../src/fused/body.js';
import type { FusedOp } from '../../src/fused/types.js';
import { swigluSchema } from './schema.js';

export function buildSwiGLU(b: Body, [gate, up]: Value[]): Value[] {
  return [b.op.Mul(b.op.Mul(gate, b.op.Sigmoid(gate)), up)];
}

export const swiglu: FusedOp = { schema: swigluSchema, buildBody: buildSwiGLU };
