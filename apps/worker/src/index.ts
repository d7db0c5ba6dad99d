export * from './app.js';
export * from './fanout.js';
export * from './health.js';
