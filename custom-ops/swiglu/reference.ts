/** Float64 reference of SwiGLU: y = g·σ(g)·u; dgate = dy·u·σ(g)·(1 + g·(1 − σ(g))), dup = dy·g·σ(g). */

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: gate.length }, (_, i) => gate[i] * sigmoid(gate[i]) * up[i]);
}

export function swigluGradRef(gate: ArrayLike<number>, up: ArrayLike<number>, dy: ArrayLike<number>): { dGate: Float64Array; dUp: Float64Array } {
  const dGate = new Float64Array(gate.length);
  const dUp = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const s = sigmoid(gate[i]);
    dGate[i] = dy[i] * up[i] * s * (1 + gate[i] * (1 - s));
    dUp[i] = dy[i] * gate[i] * s;
  }
  return { dGate, dUp };
}
