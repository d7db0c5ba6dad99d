export { type AppDeps, buildApp, type HeraldApi, loggerOptions } from './app.js';
export { apiKeyId } from './auth.js';
export { type ApiConfig, loadApiConfig, MIN_API_KEY_LENGTH } from './config.js';
export type { ErrorBody } from './error-handler.js';
