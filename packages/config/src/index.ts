export type { Static } from 'typebox';
export * from './load.js';
export * from './settings.js';
