export type { Static } from 'typebox';
// The API's route schemas use this copy, bundled into dist/index.js (scripts/bundle.mjs).
export { default as Type } from 'typebox';
export * from './apps.js';
export { APP_ID_PATTERN, appsFileProblems, appsFileSchema, fieldPath, limitsSchema } from './apps-schema.js';
export * from './default-metrics.js';
export * from './load.js';
export * from './settings.js';
export * from './tenant-label.js';
export * from './webhooks.js';
