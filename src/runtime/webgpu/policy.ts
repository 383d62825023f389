/**
 * The webgpu backend's per-op policy and its `--kernels` syntax. The policy keys, their defaults
 * and which ops may run 'native' come from the fused ops' records (WebGpuKernel.policy,
 * src/ops/kernel.ts); the callers pass the records in (src/runtime/webgpu/training-spec.ts binds FUSED_OPS).
 *
 * Per-op choices: 'kernel' = our WGSL kernel between ORT segments (./stage-split.ts); 'ort' = ORT
 * runs the op's portable body; 'native' (RMSNorm, RoPE) = the forward nodes become ONNX
 * RMSNormalization-23 / RotaryEmbedding-23, one ORT kernel each inside the segment (their backward
 * nodes run as bodies; passes/lower-to-onnx-23.ts).
 */
import { fail } from '../../errors.js';
import type { KernelPolicy } from '../../ops/kernel.js';
import type { FusedOpRecord } from '../../ops/record.js';
import { GLUE_POLICY } from './glue.js';

export type Choice = 'kernel' | 'ort' | 'native';

/** A policy key ('flce', 'rmsNorm', 'swiglu', 'rope' with today's ops). */
export type PolicyOp = string;

/** Per-op policy, keyed by {@link PolicyOp}; missing keys take the op's default. */
export type OpPolicy = Partial<Record<PolicyOp, Choice>>;

/** The policies the kernels of `ops` introduce, in list order (one per key), then the glue kernels' (./glue.ts). */
export function policiesOf(ops: readonly FusedOpRecord[]): KernelPolicy[] {
  const out = new Map<string, KernelPolicy>();
  for (const o of ops) if (o.webgpu && !out.has(o.webgpu.policy.key)) out.set(o.webgpu.policy.key, o.webgpu.policy);
  out.set(GLUE_POLICY.key, GLUE_POLICY);
  return [...out.values()];
}

/**
 * The policy with defaults filled in (each op's `default`, as measured on an H100:
 * bench/results/train-step-webgpu-h100.md). Fails on 'native' for an op without an ONNX op.
 */
export function resolvePolicy(p: OpPolicy, ops: readonly FusedOpRecord[]): Record<PolicyOp, Choice> {
  const policies = policiesOf(ops);
  const natives = policies.filter((k) => k.native).map((k) => k.key);
  for (const k of policies)
    if (p[k.key] === 'native' && !k.native) fail('usage', `webgpu policy: ${k.key} has no ONNX op to run as 'native' (only ${natives.join(', ')})`);
  return Object.fromEntries(policies.map((k) => [k.key, p[k.key] ?? k.default]));
}

/** The ops whose policy is 'native'. */
export function nativeOps(p: OpPolicy, ops: readonly FusedOpRecord[]): PolicyOp[] {
  const r = resolvePolicy(p, ops);
  return policiesOf(ops).filter((k) => k.native && r[k.key] === 'native').map((k) => k.key);
}

/**
 * `--kernels` syntax: a comma list read left to right, starting from every op in ORT:
 *   - `all` / `none`: every op as our kernel / in ORT; `default`: the defaults of `resolvePolicy`;
 *   - `op` (the policy keys lowercased: flce, rmsnorm, swiglu, rope, mlp): that op as our kernel;
 *   - `op=kernel|ort|native`: that op so ('native' for rmsnorm and rope only).
 * E.g. 'flce,swiglu', 'default,rmsnorm=native,rope=native', 'all,rope=ort'.
 */
export function parseKernels(spec: string, ops: readonly FusedOpRecord[]): Record<PolicyOp, Choice> {
  const policies = policiesOf(ops);
  const byWord = new Map(policies.map((k) => [k.key.toLowerCase(), k]));
  const natives = policies.filter((k) => k.native);
  const policy: Record<PolicyOp, Choice> = Object.fromEntries(policies.map((k) => [k.key, 'ort' as Choice]));
  const usage = (why: string): never =>
    fail('usage', `--kernels: ${why} (expected all, none, default, or a list of ${[...byWord.keys()].join(', ')}, each optionally =kernel, =ort or =native)`);
  for (const w of spec.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean)) {
    if (w === 'all' || w === 'none') for (const k of policies) policy[k.key] = w === 'all' ? 'kernel' : 'ort';
    else if (w === 'default') Object.assign(policy, resolvePolicy({}, ops));
    else {
      const [name, choice = 'kernel', ...rest] = w.split('=').map((s) => s.trim());
      const op = byWord.get(name) ?? usage(`unknown op '${name}'`);
      if (rest.length || !['kernel', 'ort', 'native'].includes(choice)) usage(`'${w}': unknown choice '${[choice, ...rest].join('=')}'`);
      if (choice === 'native' && !op.native)
        usage(`'${w}': only ${natives.map((k) => k.key.toLowerCase()).join(' and ')} can run as 'native' (ONNX ${natives.map((k) => k.native).join(', ')})`);
      policy[op.key] = choice as Choice;
    }
  }
  return policy;
}

/** The policy as a `--kernels` list: the ops on our kernels, then `op=native` ('none' when all run in ORT). */
export function formatKernels(p: OpPolicy, ops: readonly FusedOpRecord[]): string {
  const r = resolvePolicy(p, ops);
  const keys = policiesOf(ops).map((k) => k.key);
  const on = [
    ...keys.filter((k) => r[k] === 'kernel').map((k) => k.toLowerCase()),
    ...keys.filter((k) => r[k] === 'native').map((k) => `${k.toLowerCase()}=native`),
  ];
  return on.length ? on.join(',') : 'none';
}
