export * from './app.js';
export * from './doorbells.js';
export * from './fanout.js';
export * from './health.js';
