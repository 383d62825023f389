/** The `optimize` report: machine-readable (--json) and as a table per pass. */
import type { OptimizeReport } from '../index.js';

export interface OptimizeRunReport extends OptimizeReport {
  ortfuse: string;
  /** Absolute input path, or `<demo>` for the built-in model. */
  input: string;
  /** Absolute output path (null when nothing was written). */
  output: string | null;
  /** External data file written beside the output. */
  outputData: string | null;
  /** Milliseconds for load, save and the whole run (passes etc. in `timings`). */
  ms: { load: number; save: number; total: number };
}

const ms = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0));

/** The report as text: one row per pass, then the explanations and totals. */
export function formatReport(r: OptimizeRunReport, verbose = false): string {
  const lines: string[] = [];
  const out = r.output ? `${r.output}${r.outputData ? ` (+ ${r.outputData})` : ''}` : '(not saved; pass -o FILE to save)';
  lines.push(`ortfuse optimize: ${r.input} -> ${out}`);
  const rows = r.passes.map((p) => [
    p.name,
    p.modified ? 'yes' : 'no',
    Object.entries(p.counts).map(([k, v]) => `${k}=${v}`).join(' ') || '-',
    ms(p.ms),
  ]);
  if (rows.length === 0) lines.push('  (the pipeline has no passes yet)');
  else {
    const head = ['pass', 'changed', 'counts', 'ms'];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    const fmt = (row: string[]) => `  ${row.map((c, i) => (i === 3 ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ')}`.trimEnd();
    lines.push(fmt(head), ...rows.map(fmt));
  }
  if (r.explanations.length) {
    lines.push('  rules that matched nothing:');
    for (const e of r.explanations)
      lines.push(`    ${e.rule}: best partial match ${e.matched}/${e.total}${e.anchor ? ` at ${e.anchor}` : ''}: ${e.reason}`);
  }
  const check = r.checked ? 'checker ok' : 'checker skipped';
  lines.push(`  nodes ${r.nodesBefore} -> ${r.nodesAfter} · ${check} · total ${ms(r.ms.total)} ms`);
  if (verbose)
    lines.push(`  load ${ms(r.ms.load)} ms · validate ${ms(r.timings.validate)} ms · passes ${ms(r.timings.passes)} ms · check ${ms(r.timings.check)} ms · save ${ms(r.ms.save)} ms`);
  return `${lines.join('\n')}\n`;
}
