/**
 * Test support for inference: run a model in onnxruntime-node with every node output exposed and
 * compare ORT's actual output dtypes and dims with the inferred types. Used by the *.test.ts files
 * here; not part of the library API.
 */
import * as ort from 'onnxruntime-node';
import { DataType, dataTypeName } from '../../onnx/schema.js';
import { saveBytes } from '../../onnx/io.js';
import type { Model, Value } from '../graph.js';
import { formatType, type Dim } from '../types.js';
import { evalDim } from './dims.js';
import { inferShapes } from './index.js';
import type { InferReport } from './engine.js';
export { rng } from '../../random.js';
import { rng } from '../../random.js';

const ORT_TYPES: Record<string, number> = {
  float32: DataType.FLOAT, float64: DataType.DOUBLE, float16: DataType.FLOAT16, int64: DataType.INT64,
  int32: DataType.INT32, int16: DataType.INT16, int8: DataType.INT8, uint8: DataType.UINT8, bool: DataType.BOOL,
  uint16: DataType.UINT16, uint32: DataType.UINT32, uint64: DataType.UINT64,
};

/** A feed tensor for a graph input: random floats, zeros for integers, unless given. */
export function feedFor(v: Value, dims: number[], rand = rng(1)): ort.Tensor {
  const t = v.tensorType!;
  const n = dims.reduce((a, b) => a * b, 1);
  switch (t.elemType) {
    case DataType.FLOAT: return new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand() * 2 - 1), dims);
    case DataType.INT64: return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case DataType.INT32: return new ort.Tensor('int32', new Int32Array(n), dims);
    case DataType.BOOL: return new ort.Tensor('bool', new Uint8Array(n), dims);
    default: throw new Error(`no feed for ${dataTypeName(t.elemType)}`);
  }
}

export interface OrtComparison {
  report: InferReport;
  /** One line per value whose inferred type disagrees with what ORT produced. */
  mismatches: string[];
  /** Number of values compared. */
  compared: number;
}

/**
 * Expose every node output of the main graph, run the model in ORT (graph optimizations off),
 * infer shapes on `model`, and compare. Symbolic dims are evaluated with `bindings`; graph
 * inputs with symbolic dims need a binding for each symbol.
 */
export async function compareWithOrt(
  model: Model,
  opts: { feeds?: Record<string, ort.Tensor>; bindings?: Record<string, number>; only?: Value[] } = {},
): Promise<OrtComparison> {
  const g = model.graph;
  const bindings = opts.bindings ?? {};
  const exposed = opts.only ?? g.nodes.flatMap((n) => n.outputs).filter((v) => v.name !== '');
  const savedOutputs = g.outputs;
  g.outputs = [...new Set([...g.outputs, ...exposed])];
  let bytes: Uint8Array;
  try {
    bytes = saveBytes(model);
  } finally {
    g.outputs = savedOutputs;
  }
  const feeds: Record<string, ort.Tensor> = { ...opts.feeds };
  for (const v of g.inputs)
    if (!(v.name in feeds) && !v.initializer)
      feeds[v.name] = feedFor(v, (v.tensorType?.shape ?? []).map((d) => {
        const x = evalDim(d, bindings);
        if (x === null) throw new Error(`no binding for dim ${d} of input ${v.name}`);
        return x;
      }));
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  const names = [...new Set([...savedOutputs, ...exposed])];
  const results = await session.run(feeds, names.map((v) => v.name));
  await session.release();
  const report = inferShapes(model);
  const mismatches: string[] = [];
  for (const v of names) {
    const r = results[v.name];
    const t = v.tensorType;
    const dims = t?.shape?.map((d: Dim) => evalDim(d, bindings));
    const okElem = t?.elemType === ORT_TYPES[r.type];
    const okShape = dims !== undefined && dims.length === r.dims.length && dims.every((d, i) => d === r.dims[i]);
    if (!okElem || !okShape)
      mismatches.push(`${v.name} (${v.producer?.opType}): inferred ${formatType(v.type)}, ORT ${r.type}[${r.dims.join(',')}]`);
  }
  return { report, mismatches, compared: names.length };
}
