/** Relative L2 error of `got` against the reference `want` (same length; a nonzero reference). */
export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let d = 0, w = 0;
  for (let i = 0; i < want.length; i++) {
    d += (got[i] - want[i]) ** 2;
    w += want[i] ** 2;
  }
  if (!(w > 0)) throw new Error('relL2: reference is all zeros');
  return Math.sqrt(d / w);
}
