export type { Static } from 'typebox';
export * from './apps.js';
export { APP_ID_PATTERN, appsFileProblems, appsFileSchema, fieldPath, limitsSchema } from './apps-schema.js';
export * from './load.js';
export * from './settings.js';
export * from './tenant-label.js';
export * from './webhooks.js';
