export * from './graph.js';
export * from './types.js';
export * from './tensor.js';
export * from './builder.js';
export * from './commit.js';
export * from './toposort.js';
export * from './checker.js';
export * from './walk.js';
