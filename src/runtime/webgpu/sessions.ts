/**
 * The ORT-web sessions of a webgpu trainer (./trainer.ts): one for the whole training graph, or one
 * per segment of its stage plan (./stage-split.ts) — on the WebGPU EP (GPU-buffer outputs, no CSE,
 * graph capture where asked and possible) or, for a host segment, on the CPU (wasm) EP.
 */
import type * as Ort from 'onnxruntime-web';
import { NO_CSE_SESSION_CONFIG } from '../../autodiff/recompute.js';
import { fail } from '../../errors.js';
import type { TrainerOptions } from '../trainer.js';
import { deviceProbeModel } from './adapter.js';
import type { OrtWeb } from './steps.js';
import type { TrainingSpec } from './trainer.js';

/** ORT-web's storage buffer cache unless TrainerOptions.ortBufferCache says otherwise (see there). */
export const DEFAULT_ORT_BUFFER_CACHE = 'simple';

export interface TrainerSessions {
  /** In plan order (one when there is no plan). */
  sessions: Ort.InferenceSession[];
  /** Segments opened with graph capture. */
  captured: Set<number>;
  /**
   * ORT-web makes its device with its first WebGPU session and lets it go with its last: when no
   * segment runs on the GPU, this one-node session holds it (release it after the others).
   */
  deviceHolder?: Ort.InferenceSession;
}

export async function openSessions(ort: OrtWeb, spec: TrainingSpec, opts: TrainerOptions, epOptions: Record<string, string>): Promise<TrainerSessions> {
  // `epOptions` reach ORT-web's WebGPU EP only as an EP object.
  const ep = [{ name: 'webgpu', ...epOptions }];
  const open = async (bytes: Uint8Array, what: string, enableGraphCapture = false, host = false): Promise<Ort.InferenceSession> => {
    try {
      // A host segment (StagePlan.hostSegments: batch index arithmetic, tables from constants) runs on ORT's CPU (wasm) EP.
      if (host) return await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], logSeverityLevel: 3 });
      // No CSE: it would merge the backward's recomputations back into the forward values (src/autodiff/recompute.ts).
      const cache = spec.bufferCache ?? opts.ortBufferCache ?? DEFAULT_ORT_BUFFER_CACHE;
      const epo = ep.map((e) => ({ ...e, storageBufferCacheMode: cache }));
      return await ort.InferenceSession.create(bytes, { executionProviders: epo as Ort.InferenceSession.ExecutionProviderConfig[], preferredOutputLocation: 'gpu-buffer', logSeverityLevel: 3, extra: NO_CSE_SESSION_CONFIG, enableGraphCapture });
    } catch (e) {
      return fail('runtime', `onnxruntime-web (${host ? 'wasm' : 'webgpu'}) refused ${what}: ${(e as Error).message.split('\n')[0]}`, e);
    }
  };
  const sessions: Ort.InferenceSession[] = [];
  if (opts.graphCapture && !spec.stages?.capturable) fail('usage', 'graph capture needs the stage plan of a graph specialised to one batch shape');
  const captured = new Set<number>();
  if (!spec.stages) return { sessions: [await open(spec.model, 'the training graph')], captured };
  const host = new Set(spec.stages.plan.hostSegments ?? []);
  for (const [i, bytes] of spec.stages.segments.entries()) {
    const capture = !!opts.graphCapture && !!spec.stages.capturable?.[i];
    if (capture) captured.add(i);
    sessions.push(await open(bytes, `segment ${i}`, capture, host.has(i)));
  }
  const deviceHolder = host.size === sessions.length ? await open(deviceProbeModel(), 'a one-node model (to make the WebGPU device)') : undefined;
  return { sessions, captured, deviceHolder };
}
