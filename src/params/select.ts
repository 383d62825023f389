/**
 * Choosing what trains: `--trainable GLOB` / `--freeze GLOB` over parameter names (the torch
 * names where the export records them, and their tied aliases), and the account of what trains,
 * what is frozen and what is a buffer or constant, for the train-start summary.
 */
import picomatch from 'picomatch';
import { fail } from '../errors.js';
import type { DiscoveredParameter, ParameterDiscovery } from './discover.js';

export interface Selection {
  /** Glob(s) of parameters to train (default: all). */
  trainable?: readonly string[];
  /** Glob(s) of parameters to keep fixed. */
  freeze?: readonly string[];
}

export interface ParameterReport {
  method: ParameterDiscovery['method'];
  trained: { name: string; shape: number[]; size: number }[];
  frozen: { name: string; shape: number[]; size: number }[];
  nonParameters: ParameterDiscovery['nonParameters'];
  /** Float values in the model (parameters once each, plus buffers and constants). */
  totalFloats: number;
  trainedFloats: number;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function matcher(globs: readonly string[], what: string, all: DiscoveredParameter[]): (p: DiscoveredParameter) => boolean {
  const tests = globs.map((g) => {
    const m = picomatch(g, { dot: true });
    if (!all.some((p) => m(p.name) || p.aliases.some((a) => m(a)))) fail('usage', `${what} '${g}' matches no parameter (names look like '${all[0]?.name ?? '?'}'; see ortfuse inspect --params)`);
    return m;
  });
  return (p) => tests.some((m) => m(p.name) || p.aliases.some((a) => m(a)));
}

/** Split discovered parameters into trained and frozen by the globs. */
export function selectParameters(d: ParameterDiscovery, s: Selection = {}): ParameterReport {
  const isTrainable = s.trainable?.length ? matcher(s.trainable, '--trainable', d.parameters) : () => true;
  const isFrozen = s.freeze?.length ? matcher(s.freeze, '--freeze', d.parameters) : () => false;
  const entry = (p: DiscoveredParameter) => ({ name: p.name, shape: p.shape, size: size(p.shape) });
  const trained = d.parameters.filter((p) => isTrainable(p) && !isFrozen(p)).map(entry);
  const names = new Set(trained.map((p) => p.name));
  const frozen = d.parameters.filter((p) => !names.has(p.name)).map(entry);
  const trainedFloats = trained.reduce((s2, p) => s2 + p.size, 0);
  const totalFloats = trainedFloats + frozen.reduce((s2, p) => s2 + p.size, 0) + d.nonParameters.reduce((s2, p) => s2 + p.size, 0);
  return { method: d.method, trained, frozen, nonParameters: d.nonParameters, totalFloats, trainedFloats };
}

/** `a, b, c … and N more` */
function summarizeNames(names: string[], max = 4): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} … and ${names.length - max} more`;
}

const millions = (n: number) => (n >= 1e5 ? `${(n / 1e6).toFixed(2)}M` : String(n));

/** The train-start account: one line, plus a warning line when less than half the float weights train. */
export function describeParameters(r: ParameterReport): string[] {
  const lines = [
    `trained ${millions(r.trainedFloats)} of ${millions(r.totalFloats)} float parameters (${r.trained.length} tensors${r.method === 'torch-record' ? ', names from the exporter\'s record' : ', found by graph role'})`
    + (r.frozen.length ? `; frozen: ${summarizeNames(r.frozen.map((p) => p.name))}` : '')
    + (r.nonParameters.some((p) => p.size > 1) ? `; not parameters: ${summarizeNames(r.nonParameters.filter((p) => p.size > 1).map((p) => `${p.name} (${p.kind})`))}` : ''),
  ];
  const adapters = r.trained.length > 0 && r.trained.every((p) => /\.lora_[AB]\.weight$/.test(p.name)); // LoRA: few train by design
  if (r.trainedFloats * 2 < r.totalFloats && !adapters)
    lines.push(`warning: fewer than half of the model's float values train (${millions(r.trainedFloats)} of ${millions(r.totalFloats)}); check --trainable/--freeze, or list what was found with 'ortfuse inspect --params'`);
  return lines;
}
