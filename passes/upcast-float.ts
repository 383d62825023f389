/**
 * upcast-float — make a half-precision model (torch_dtype=bfloat16 or float16, exported as it is)
 * an fp32 one, exactly: every bfloat16 / float16 initializer and tensor-valued attribute (Constant,
 * ConstantOfShape) is widened to float32 (both widen without rounding), every value typed bfloat16
 * / float16 is retyped float32, and the dtype attributes that name them (Cast `to`, EyeLike and the
 * Random* ops' `dtype`) name float32 instead — a Cast to bfloat16 then is a no-op, which
 * remove-noops takes out. The model then computes in fp32 what the half model computed with the
 * same (rounded) weights; training and our fusions see an ordinary fp32 graph.
 *
 * Counts: `initializers`, `values`, `attributes` (dtype and tensor attributes changed), per source
 * type in `from` of {@link upcastToFloat32}.
 */
import type { Attr, Model, Value } from '../src/ir/graph.js';
import { Tensor } from '../src/ir/tensor.js';
import { tensorType } from '../src/ir/types.js';
import { widenHalf } from '../src/onnx/half.js';
import { DataType, dataTypeName } from '../src/onnx/schema.js';
import type { Pass, PassResult } from '../src/rewrite/pass.js';
import { graphsOf } from '../src/rewrite/rule.js';
import { nonZero } from './dce.js';

const HALF = new Set<number>([DataType.BFLOAT16, DataType.FLOAT16]);
/** Attributes holding an element type, by op (ONNX domain). */
const DTYPE_ATTRS: Record<string, string> = { Cast: 'to', EyeLike: 'dtype', RandomNormal: 'dtype', RandomUniform: 'dtype', RandomNormalLike: 'dtype', RandomUniformLike: 'dtype', Bernoulli: 'dtype' };

function widenTensor(t: Tensor): Tensor {
  return Tensor.fromBytes(DataType.FLOAT, t.dims.slice(), new Uint8Array(widenHalf(t.dtype, t.toArray() as Uint16Array).buffer));
}

export interface UpcastReport {
  /** The half types found ('bfloat16', 'float16'); empty when the model was fp32 already. */
  from: string[];
  initializers: number;
  values: number;
  attributes: number;
}

/** Upcast `model` in place (see the file header); what changed. */
export function upcastToFloat32(model: Model): UpcastReport {
  const from = new Set<string>();
  const r = { initializers: 0, values: 0, attributes: 0 };
  const retype = (v: Value | null | undefined) => {
    const t = v?.tensorType;
    if (!v || !t || !HALF.has(t.elemType)) return;
    from.add(dataTypeName(t.elemType).toLowerCase());
    v.type = tensorType(DataType.FLOAT, t.shape?.slice());
    r.values++;
  };
  for (const g of graphsOf(model)) {
    for (const v of g.initializers) {
      const t = v.initializer!;
      if (!HALF.has(t.dtype)) continue;
      from.add(dataTypeName(t.dtype).toLowerCase());
      v.initializer = widenTensor(t);
      r.initializers++;
    }
    for (const v of [...g.inputs, ...g.outputs, ...g.initializers, ...g.valueInfoOrder]) retype(v);
    for (const n of g.nodes) {
      n.outputs.forEach(retype);
      n.inputs.forEach(retype);
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      const key = DTYPE_ATTRS[n.opType];
      const dt = key !== undefined ? n.attributes.get(key) : undefined;
      if (dt?.type === 'INT' && HALF.has(Number(dt.value))) {
        from.add(dataTypeName(Number(dt.value)).toLowerCase());
        n.setAttr({ ...dt, value: BigInt(DataType.FLOAT), proto: undefined } as Attr);
        r.attributes++;
      }
      for (const a of n.attributes.values())
        if (a.type === 'TENSOR' && a.value instanceof Tensor && HALF.has(a.value.dtype)) {
          from.add(dataTypeName(a.value.dtype).toLowerCase());
          n.setAttr({ ...a, value: widenTensor(a.value), proto: undefined });
          r.attributes++;
        }
    }
  }
  return { from: [...from].sort(), ...r };
}

/** The pass form (first in a pipeline that must see fp32): counts as in the file header. */
export const upcastFloat: Pass = {
  name: 'upcast-float',
  run(model: Model): PassResult {
    const r = upcastToFloat32(model);
    const counts = nonZero({ initializers: r.initializers, values: r.values, attributes: r.attributes });
    return { modified: Object.keys(counts).length > 0, counts };
  },
};
