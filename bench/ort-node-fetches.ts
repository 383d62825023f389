/**
 * Issue 13, build item 2 on the cpu backend: what onnxruntime-node does with pre-allocated outputs
 * (`session.run(feeds, fetches)` with Tensors over our own Float32Arrays). One graph, x → K outputs
 * x·c_k of N floats each, CPU arena off (as under --memory-budget); each mode in its own process:
 *   names:    fetch by name; ORT allocates the outputs, the binding returns copies, we copy them
 *             into our arrays (the trainer before preallocateGradients kept the copies instead)
 *   prealloc: our arrays as pre-allocated outputs
 * Reports peak RSS growth over the process before the first run, whether ORT wrote into our
 * arrays, and whether the tensors run() returns are our arrays or copies.
 *
 *   node dist/bench/ort-node-fetches.js [--mib 256] [--outputs 4] [--runs 1] [--out FILE.json]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
};
const hwmMiB = () => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

async function child(mode: string): Promise<void> {
  const ort = await import('onnxruntime-node');
  const { createModel, GraphBuilder } = await import('../src/ir/index.js');
  const { DataType } = await import('../src/onnx/schema.js');
  const { saveBytes } = await import('../src/onnx/io.js');
  const n = (Number(arg('mib', '256')) * 2 ** 20) / 4;
  const k = Number(arg('outputs', '4'));
  const m = createModel({ opset: 20 });
  const b = new GraphBuilder(m.graph);
  const x = b.input('x', DataType.FLOAT, [n]);
  for (let i = 0; i < k; i++) b.output(b.op.Mul(x, b.constant(i + 2, { dtype: DataType.FLOAT })), `y${i}`);
  const s = await ort.InferenceSession.create(saveBytes(m), { enableCpuMemArena: false, logSeverityLevel: 3 });
  const xs = new Float32Array(n).fill(1);
  const mine = Array.from({ length: k }, () => new Float32Array(n).fill(0));
  (globalThis as { gc?: () => void }).gc?.();
  const base = hwmMiB();
  let returnedOurs = 0;
  for (let r = 0; r < Number(arg('runs', '1')); r++) {
    const feeds = { x: new ort.Tensor('float32', xs, [n]) };
    const out = mode === 'prealloc'
      ? await s.run(feeds, Object.fromEntries(mine.map((a, i) => [`y${i}`, new ort.Tensor('float32', a, [n])])))
      : await s.run(feeds);
    for (let i = 0; i < k; i++) {
      const d = (out[`y${i}`] as InstanceType<typeof ort.Tensor>).data as Float32Array;
      if (mode === 'names') mine[i].set(d);
      else if (d.buffer === mine[i].buffer) returnedOurs++;
    }
  }
  const written = mine.every((a, i) => a[n - 1] === i + 2);
  console.log(JSON.stringify({ mode, outputs: k, outputsMiB: (k * n * 4) / 2 ** 20, baseMiB: Math.round(base), growthMiB: Math.round(hwmMiB() - base), written, returnedOurs }));
  await s.release();
}

if (process.argv.includes('--child')) await child(process.argv[process.argv.indexOf('--child') + 1]);
else {
  const self = fileURLToPath(import.meta.url);
  const rows = ['names', 'prealloc'].map((mode) => {
    const r = spawnSync(process.execPath, ['--expose-gc', self, '--child', mode, ...process.argv.slice(2)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${mode}: exit ${r.status}: ${r.stderr.slice(-400)}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!);
  });
  const out = arg('out', '');
  if (out) fs.writeFileSync(out, JSON.stringify(rows, null, 2));
  for (const r of rows) console.log(JSON.stringify(r));
  console.log('| fetches | outputs MiB | peak RSS growth MiB | ORT wrote our arrays | run() returned our arrays |\n|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.mode} | ${r.outputsMiB} | ${r.growthMiB} | ${r.mode === 'prealloc' ? (r.written ? 'yes' : 'no') : '-'} | ${r.mode === 'prealloc' ? `${r.returnedOurs} of ${r.outputs}` : '-'} |`);
}
