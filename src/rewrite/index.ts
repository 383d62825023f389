/** The rewrite engine: pattern DSL, matcher, rules, rule passes and shape checks. */
export * from './pattern.js';
export * from './matcher.js';
export * from './rule.js';
export * from './shape.js';
export * from './constant.js';
export * from './pass.js';
