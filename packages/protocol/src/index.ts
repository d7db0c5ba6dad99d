export * from './catalog.js';
export * from './encode.js';
export * from './frames.js';
export * from './health.js';
export * from './parse.js';
export * from './publish.js';
export * from './server-frames.js';
export * from './streams.js';
