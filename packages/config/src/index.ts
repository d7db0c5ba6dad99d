export * from './load.js';
export * from './settings.js';
export type { Static } from 'typebox';
