import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp } from './app.js';
import { loadApiConfig } from './config.js';

/** The committed copy of the document, at the repository root. */
export const OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));

/** How to refresh the committed copy, for the sync test's failure message. */
export const OPENAPI_UPDATE = 'npm run openapi -w @herald/api';

/** A connection that is never used: the document needs the routes, not Redis. */
function idle(): Redis {
  const r = new Redis('redis://127.0.0.1:1', {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {});
  return r;
}

/**
 * The OpenAPI document of an API with default settings (limits such as the largest `ttl` come
 * from settings), as pretty-printed JSON with a final newline: what docs/openapi.json holds.
 */
export async function openApiText(): Promise<string> {
  const config = loadApiConfig({
    REDIS_URL: 'redis://127.0.0.1:1',
    HERALD_API_KEYS: 'openapi-only-0123456789',
  });
  const redis = idle();
  const queueRedis = idle();
  const app = buildApp({ config, redis, queueRedis, loggerInstance: pino({ level: 'silent' }) });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close().catch(() => {});
    redis.disconnect();
    queueRedis.disconnect();
  }
}

/** The committed document, or '' when there is none. */
export function committedOpenApi(): string {
  try {
    return readFileSync(OPENAPI_FILE, 'utf8');
  } catch {
    return '';
  }
}

// `node dist/openapi-doc.js` (npm run openapi -w @herald/api) writes docs/openapi.json.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const text = await openApiText();
  writeFileSync(OPENAPI_FILE, text);
  console.log(`wrote ${OPENAPI_FILE}`);
}
