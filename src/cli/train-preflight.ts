/**
 * `ortfuse train` checks before the model is even loaded: backend and option ranges, every output
 * path writable (and none of them an input), the texts readable and text, the checkpoint to
 * resume readable, --max-time a duration. The runtime then checks what needs the model
 * (src/runtime/train.ts). Nothing is written here.
 */
import * as path from 'node:path';
import { fail } from '../errors.js';
import { mobyDick, readText } from '../data/corpus.js';
import { readCheckpointHeader } from '../runtime/checkpoint.js';
import { BACKEND_PEERS } from '../runtime/peers.js';
import { checkOptions } from '../runtime/run-checks.js';
import { BACKENDS, type TrainOptions } from '../runtime/train.js';
import { parseDuration } from './train-session.js';
import { assertWritable } from './writable.js';
import { resolveLora, type ResolvedLora } from '../params/lora-config.js';
import { loadAdapterDir } from '../params/adapter-dir.js';

/** The CLI's train arguments as far as the checks need them. */
export interface PreflightArgs extends TrainOptions {
  input?: string;
  text?: string;
  evalTextFile?: string;
  json?: string;
  plot?: string;
  maxTime?: string;
  backend: string;
  loraSpec?: string;
  loraInit?: string;
}

export interface Checked {
  /** Absolute paths. */
  model?: string;
  json?: string;
  plot?: string;
  checkpoint?: string;
  resume?: string;
  saveWeights?: string;
  saveModel?: string;
  text: string;
  evalText?: string;
  maxTimeMs?: number;
  lora?: ResolvedLora;
  saveAdapter?: string;
}

export function preflight(a: PreflightArgs, cwd: string): Checked {
  if (!(BACKENDS as readonly string[]).includes(a.backend)) fail('usage', `--backend ${a.backend}: expected one of ${BACKENDS.join(', ')}`);
  checkOptions(a);
  checkPeers(a.backend as keyof typeof BACKEND_PEERS);
  const maxTimeMs = a.maxTime === undefined ? undefined : parseDuration(a.maxTime) ?? fail('usage', `--max-time ${a.maxTime}: expected a duration such as 90s, 30m or 2h`);
  const abs = (f?: string) => (f === undefined ? undefined : path.resolve(cwd, f));
  const c: Checked = { model: abs(a.input), json: abs(a.json), plot: abs(a.plot), checkpoint: abs(a.checkpoint), resume: abs(a.resume), saveWeights: abs(a.saveWeights), saveModel: abs(a.saveModel), text: '', maxTimeMs };
  const inputs = new Map([[c.model, '--model'], [abs(a.text), '--text'], [abs(a.evalTextFile), '--eval-text']]);
  const outputs: [string | undefined, string][] = [[c.json, '--json'], [c.plot, '--plot'], [c.checkpoint, '--checkpoint'], [c.saveWeights, '--save-weights'], [c.saveModel, '--save-model']];
  const seen = new Map<string, string>();
  for (const [file, flag] of outputs) {
    if (!file) continue;
    assertWritable(file, flag);
    if (inputs.has(file)) fail('usage', `${flag} ${file} is also the ${inputs.get(file)} input; it would be overwritten`);
    if (seen.has(file)) fail('usage', `${flag} and ${seen.get(file)} name the same file ${file}`);
    seen.set(file, flag);
  }
  c.lora = loraOptions(a, abs);
  c.saveAdapter = abs(a.saveAdapter);
  if (c.saveAdapter) {
    if (!c.lora) fail('usage', '--save-adapter needs --lora (or --lora-init): there is no adapter to save');
    if (inputs.has(c.saveAdapter)) fail('usage', `--save-adapter ${c.saveAdapter} is also the ${inputs.get(c.saveAdapter)} input`);
  }
  if (c.resume) readCheckpointHeader(c.resume);
  c.text = a.text ? readText(abs(a.text)!, '--text') : mobyDick();
  if (a.evalTextFile) c.evalText = readText(abs(a.evalTextFile)!, '--eval-text');
  return c;
}

/** --lora / --lora-init / --merge: the resolved settings (the init adapter read now), or undefined without LoRA. */
function loraOptions(a: PreflightArgs, abs: (f?: string) => string | undefined): ResolvedLora | undefined {
  const on = a.loraSpec !== undefined || a.loraInit !== undefined;
  if (!on) {
    if (a.merge) fail('usage', '--merge needs --lora (or --lora-init): without adapters the trained weights are written as they are');
    return undefined;
  }
  if (a.trainable?.length || a.freeze?.length) fail('usage', `--${a.trainable?.length ? 'trainable' : 'freeze'} does not apply with --lora (only the adapters train)`);
  if (a.merge && !a.saveWeights && !a.saveModel) fail('usage', '--merge goes with --save-weights or --save-model (it says what they write)');
  if (a.saveModel && !a.merge) fail('usage', '--save-model with --lora needs --merge (the ONNX model gets the merged weights W + s·B·A)');
  const lora = resolveLora(a.loraSpec ?? {});
  if (a.loraInit) lora.init = loadAdapterDir(abs(a.loraInit)!);
  if (a.input) lora.baseModel = path.basename(a.input).replace(/\.onnx$/, '');
  return lora;
}

/** The backend's optional peer packages are installed (resolved, not loaded: nothing starts here). */
function checkPeers(backend: keyof typeof BACKEND_PEERS): void {
  const missing = BACKEND_PEERS[backend].filter((p) => {
    try {
      import.meta.resolve(p);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) fail('usage', `backend '${backend}' needs the package${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed: npm install ${BACKEND_PEERS[backend].join(' ')}`);
}
