/** A loss curve on a canvas: axes with min/max labels, one polyline, redrawn per step. */
export function drawLossChart(canvas: HTMLCanvasElement, losses: number[], totalSteps: number): void {
  const g = canvas.getContext('2d');
  if (!g) return;
  const { width: w, height: h } = canvas;
  const pad = { l: 48, r: 12, t: 12, b: 28 };
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#999';
  g.fillStyle = '#444';
  g.font = '11px sans-serif';
  g.beginPath();
  g.moveTo(pad.l, pad.t);
  g.lineTo(pad.l, h - pad.b);
  g.lineTo(w - pad.r, h - pad.b);
  g.stroke();
  if (losses.length === 0) return;
  const hi = Math.max(...losses), lo = Math.min(...losses);
  const span = hi - lo || 1;
  const x = (i: number) => pad.l + ((w - pad.l - pad.r) * i) / Math.max(1, totalSteps - 1);
  const y = (v: number) => pad.t + ((h - pad.t - pad.b) * (hi - v)) / span;
  g.fillText(hi.toFixed(3), 4, pad.t + 8);
  g.fillText(lo.toFixed(3), 4, h - pad.b);
  g.fillText('step 1', pad.l, h - 8);
  g.fillText(`step ${totalSteps}`, w - pad.r - 48, h - 8);
  g.strokeStyle = '#1f6feb';
  g.lineWidth = 2;
  g.beginPath();
  losses.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.stroke();
}
