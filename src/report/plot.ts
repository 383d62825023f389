/**
 * Loss curves as SVG, drawn with Vega-Lite (rendered headless by Vega's SVG renderer).
 */
import * as vega from 'vega';
import { compile } from 'vega-lite';

export interface Series {
  name: string;
  points: { step: number; loss: number }[];
}

/** An SVG line chart of loss against step, one line per series. */
export async function lossChartSvg(series: Series[], title = 'training loss'): Promise<string> {
  const values = series.flatMap((s) => s.points.map((p) => ({ run: s.name, step: p.step, loss: p.loss })));
  const spec = compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 640,
    height: 360,
    data: { values },
    mark: { type: 'line', point: values.length <= 200 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: { field: 'run', type: 'nominal', title: null },
      strokeDash: { field: 'run', type: 'nominal', legend: null },
    },
  } as any).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
