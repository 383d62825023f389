/**
 * WGSL for workgroup-wide reductions of one f32 per invocation: `wg_sum(v, lidx, sgs, lane)` and
 * `wg_max(...)`, every invocation gets the result. With subgroups (when the adapter offers them):
 * subgroupAdd/Max, one partial per subgroup in workgroup memory, then each invocation folds the
 * partials (assumes invocations are assigned to subgroups by consecutive local index, as
 * onnxruntime's WebGPU kernels do). Without: a shared-memory tree. Call from uniform control flow;
 * the functions have barriers on entry and exit, so they can be called back to back.
 *
 * `wgSize` must be a power of two. Use `reduceArgs(subgroups)` at the call site for the last two
 * arguments (they are dummies without subgroups).
 */
export function reductionWgsl(wgSize: number, subgroups: boolean): string {
  if (wgSize & (wgSize - 1)) throw new RangeError(`reduction workgroup size ${wgSize} is not a power of two`);
  const fold = (name: string, op: (a: string, b: string) => string, sg: string) =>
    subgroups
      ? `
fn ${name}(v: f32, lidx: u32, sgs: u32, lane: u32) -> f32 {
  let s = ${sg}(v);
  workgroupBarrier();
  if (lane == 0u) { red_buf[lidx / sgs] = s; }
  workgroupBarrier();
  var r = red_buf[0];
  for (var i = 1u; i < ${wgSize}u / sgs; i++) { r = ${op('r', 'red_buf[i]')}; }
  workgroupBarrier();
  return r;
}`
      : `
fn ${name}(v: f32, lidx: u32, sgs: u32, lane: u32) -> f32 {
  workgroupBarrier();
  red_buf[lidx] = v;
  workgroupBarrier();
  for (var s = ${wgSize / 2}u; s > 0u; s >>= 1u) {
    if (lidx < s) { red_buf[lidx] = ${op('red_buf[lidx]', 'red_buf[lidx + s]')}; }
    workgroupBarrier();
  }
  let r = red_buf[0];
  workgroupBarrier();
  return r;
}`;
  return `
var<workgroup> red_buf: array<f32, ${wgSize}>;
${fold('wg_sum', (a, b) => `${a} + ${b}`, 'subgroupAdd')}
${fold('wg_max', (a, b) => `max(${a}, ${b})`, 'subgroupMax')}
`;
}

/** The trailing arguments of wg_sum/wg_max inside a program's main. */
export function reduceArgs(subgroups: boolean): string {
  return subgroups ? 'lidx, sg_size, sg_lane' : 'lidx, 1u, 0u';
}
