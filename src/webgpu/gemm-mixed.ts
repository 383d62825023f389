/// <reference types="@webgpu/types" />
/**
 * `gemmMixed`: the GEMM of precision 'f16' (custom-ops/precision.ts) — every operand element
 * rounded to IEEE half, products accumulated in fp32. On the tensor cores (./gemm-f16.ts
 * `gemmF16`, operands converted to f16 when staged) where the context carries their options
 * (`ctx.f16Matrix`, set by whoever probed the device), else on gemm_f32 with each staged element
 * rounded to nearest-even half (./gemm.ts F32Variant.roundF16, `round_f16`; core WGSL, so any
 * device runs it).
 * Both round the same values the same way; they differ only in accumulation order.
 */
import type { GpuContext } from './context.js';
import { F32_DEFAULT, F32_SMALL_DEFAULT, gemmF32 } from './gemm.js';
import { gemmPlan } from './gemm-plan.js';
import { gemmF16 } from './gemm-f16.js';
import { f16Rule } from './gemm-f16-plan.js';
import { f16DirectWhyNot, gemmF16Direct } from './gemm-f16-direct.js';
import type { MatmulArgs } from './matmul.js';

/** C = alpha·op(A)·op(B) (+ C) with A and B rounded to half (see header). */
export function gemmMixed(ctx: GpuContext, args: MatmulArgs): void {
  const m = ctx.f16Matrix;
  if (m) {
    // The experimental kernels on f16 copies, where the rule asks for them and they apply (measurements).
    const rule = f16Rule(m);
    const staged = rule === 'staged';
    if ((staged || rule === 'direct') && !f16DirectWhyNot(args, m, staged)) return gemmF16Direct(ctx, args, m, staged);
    return gemmF16(ctx, args, m);
  }
  const { small } = gemmPlan(args);
  gemmF32(ctx, args, { ...(small ? F32_SMALL_DEFAULT : F32_DEFAULT), roundF16: true });
}

/** The GEMM for a fused op's precision: gemmF32 ('fp32', or absent) or gemmMixed ('f16'). */
export function gemmFor(precision: string | undefined): (ctx: GpuContext, args: MatmulArgs) => void {
  return precision === 'f16' ? gemmMixed : gemmF32;
}
