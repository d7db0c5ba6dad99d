export * from './close-codes.js';
export * from './encode.js';
export * from './frames.js';
export * from './parse.js';
export * from './publish.js';
export * from './server-frames.js';
export * from './streams.js';
