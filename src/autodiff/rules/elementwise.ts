/**
 * Gradients of the elementwise ONNX ops (numpy broadcasting: every input gradient is summed back
 * to the input's shape). dy = gradient of the output, y = the forward output.
 */
import type { GradFn, GradRule } from '../types.js';

const dyTo: GradFn = (g, i) => g.sumToX(g.dy(), i);
const same: GradFn = (g) => g.dy();

/** Unary rule reading only the output: dx = f(dy, y). */
function fromY(fn: (g: Parameters<GradFn>[0]) => ReturnType<GradFn>): GradRule {
  return { save: { outputs: [0] }, grads: [fn] };
}

/** Unary rule reading only the input: dx = f(dy, x). */
function fromX(fn: (g: Parameters<GradFn>[0]) => ReturnType<GradFn>): GradRule {
  return { save: { inputs: [0] }, grads: [fn] };
}

export const elementwiseRules: Record<string, GradRule> = {
  // y = a + b
  Add: { save: {}, grads: [dyTo, dyTo] },
  // y = a - b
  Sub: { save: {}, grads: [dyTo, (g, i) => g.sumToX(g.op.Neg(g.dy()), i)] },
  // y = a * b
  Mul: {
    save: { inputs: [0, 1] },
    grads: [(g, i) => g.sumToX(g.op.Mul(g.dy(), g.x(1)), i), (g, i) => g.sumToX(g.op.Mul(g.dy(), g.x(0)), i)],
  },
  // y = a / b: da = dy / b, db = -dy * y / b
  Div: {
    save: { inputs: [1], outputs: [0] },
    grads: [
      (g, i) => g.sumToX(g.op.Div(g.dy(), g.x(1)), i),
      (g, i) => g.sumToX(g.op.Neg(g.op.Div(g.op.Mul(g.dy(), g.y(0)), g.x(1))), i),
    ],
  },
  // y = x ^ p: dx = dy * p * x^(p-1) (p = 2: dy * 2x), dp = dy * y * log(x)
  Pow: {
    save: { inputs: [0, 1], outputs: [0] },
    grads: [
      (g, i) => {
        const t = g.elemTypeX(0);
        const p = g.constX(1);
        if (p && p.length === 1) {
          const k = p[0];
          if (k === 0) return undefined;
          if (k === 1) return g.sumToX(g.dy(), i);
          const xp = k === 2 ? g.x(0) : g.op.Pow(g.x(0), g.scalar(k - 1, t));
          return g.sumToX(g.op.Mul(g.dy(), g.op.Mul(xp, g.scalar(k, t))), i);
        }
        const pe = g.elemTypeX(1) === t ? g.x(1) : g.op.Cast(g.x(1), { to: t });
        const xp = g.op.Pow(g.x(0), g.op.Sub(pe, g.scalar(1, t)));
        return g.sumToX(g.op.Mul(g.dy(), g.op.Mul(pe, xp)), i);
      },
      (g, i) => g.sumToX(g.op.Mul(g.dy(), g.op.Mul(g.y(0), g.op.Log(g.x(0)))), i),
    ],
  },
  Neg: { save: {}, grads: [(g) => g.op.Neg(g.dy())] },
  Identity: { save: {}, grads: [same] },
  // Inference-mode Dropout is the identity on output 0.
  Dropout: {
    save: {},
    grads: [(g) => {
      if (g.node.inputs[2] && g.constX(2)?.[0] !== 0) g.unsupported('training-mode Dropout is not differentiated');
      return g.dy();
    }],
  },
  // y = sqrt(x): dx = dy * 0.5 / y
  Sqrt: fromY((g) => g.op.Div(g.op.Mul(g.dy(), g.scalar(0.5, g.elemTypeY(0))), g.y(0))),
  // y = 1/x: dx = -dy * y²
  Reciprocal: fromY((g) => g.op.Neg(g.op.Mul(g.dy(), g.op.Mul(g.y(0), g.y(0))))),
  Exp: fromY((g) => g.op.Mul(g.dy(), g.y(0))),
  Log: fromX((g) => g.op.Div(g.dy(), g.x(0))),
  // dx = dy * y * (1 - y)
  Sigmoid: fromY((g) => g.op.Mul(g.dy(), g.op.Mul(g.y(0), g.op.Sub(g.scalar(1, g.elemTypeY(0)), g.y(0))))),
  // dx = dy * (1 - y²)
  Tanh: fromY((g) => g.op.Mul(g.dy(), g.op.Sub(g.scalar(1, g.elemTypeY(0)), g.op.Mul(g.y(0), g.y(0))))),
  Sin: fromX((g) => g.op.Mul(g.dy(), g.op.Cos(g.x(0)))),
  Cos: fromX((g) => g.op.Neg(g.op.Mul(g.dy(), g.op.Sin(g.x(0))))),
  // dx = dy * sign(x)
  Abs: fromX((g) => g.op.Mul(g.dy(), g.op.Sign(g.x(0)))),
  // dx = dy where y > 0
  Relu: fromY((g) => g.op.Where(g.op.Greater(g.y(0), g.scalar(0, g.elemTypeY(0))), g.dy(), g.scalar(0, g.elemTypeY(0)))),
  // dx = dy * 2/sqrt(pi) * exp(-x²)
  Erf: fromX((g) => {
    const t = g.elemTypeX(0);
    const e = g.op.Exp(g.op.Neg(g.op.Mul(g.x(0), g.x(0))));
    return g.op.Mul(g.dy(), g.op.Mul(e, g.scalar(2 / Math.sqrt(Math.PI), t)));
  }),
  // Cast between float types: cast the gradient back (non-float sides are cut by the engine).
  Cast: { save: {}, grads: [(g) => g.op.Cast(g.dy(), { to: g.elemTypeX(0) })] },
  CastLike: { save: {}, grads: [(g) => g.op.Cast(g.dy(), { to: g.elemTypeX(0) })] },
  // y = where(c, a, b)
  Where: {
    save: { inputs: [0] },
    grads: [
      undefined,
      (g, i) => g.sumToX(g.op.Where(g.x(0), g.dy(), g.scalar(0, g.elemTypeY(0))), i),
      (g, i) => g.sumToX(g.op.Where(g.x(0), g.scalar(0, g.elemTypeY(0)), g.dy()), i),
    ],
  },
  // y = sum(x_i), broadcast
  Sum: { save: {}, grads: [], variadic: dyTo },
  // y = max(a, b) / min(a, b): the gradient goes to the selected input (to a on ties).
  Max: { save: { inputs: [0, 1], outputs: [0] }, grads: [pick(true), pick(false)] },
  Min: { save: { inputs: [0, 1], outputs: [0] }, grads: [pick(true), pick(false)] },
};

function pick(first: boolean): GradFn {
  return (g, i) => {
    if (g.node.inputs.length !== 2) g.unsupported(`${g.node.opType} with ${g.node.inputs.length} inputs`);
    const z = g.scalar(0, g.elemTypeY(0));
    const isA = g.op.Equal(g.y(0), g.x(0));
    return g.sumToX(first ? g.op.Where(isA, g.dy(), z) : g.op.Where(isA, z, g.dy()), i);
  };
}
