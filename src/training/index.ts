/** The training API (see ./trainer.ts) and the data helpers its examples use. */
export { createTrainer, Trainer, type StepInfo, type TrainerEvents } from './trainer.js';
export type { ParameterReport } from '../params/select.js';
export type { TrainerConfig, BackendName } from './options.js';
export type { LoraOptions } from '../params/lora-config.js';
export type { LoraAdapters, LoraModule } from '../params/lora.js';
export { adapterFiles, readAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../params/adapter.js';
export { textBatches, toBatch, type TextBatches, type TextBatchesOptions } from './data.js';
export { BACKEND_PEERS } from '../runtime/peers.js';
export { getTokenizer, type Tokenizer } from '../data/tokenizer.js';
export { mobyDick } from '../data/corpus.js';
export { batches, split, type Batch, type Dataset } from '../data/batches.js';
export { demoModel } from './demo.js';
