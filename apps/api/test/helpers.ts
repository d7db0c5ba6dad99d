import { once } from 'node:events';
import { Writable } from 'node:stream';
import type { RedisClient as Redis } from '@herald/store';
import { FANOUT_QUEUE, Keys, queueOptions } from '@herald/store';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { loggerOptions } from '../src/app.js';
import { type ApiConfig, loadApiConfig } from '../src/config.js';

export const KEY = 'test-key-0123456789abcdef';
export const KEY2 = 'other-key-0123456789abcdef';

/** Small limits so the limit tests need small bodies. */
export function testConfig(redisUrl: string, prefix: string, env: Record<string, string> = {}): ApiConfig {
  return loadApiConfig({
    REDIS_URL: redisUrl,
    HERALD_API_KEYS: `${KEY}, ${KEY2}`,
    HERALD_REDIS_PREFIX: prefix,
    HERALD_MAX_BODY_BYTES: '2048',
    HERALD_MAX_DATA_BYTES: '256',
    HERALD_TTL_DEFAULT_S: '60',
    HERALD_TTL_MAX_S: '3600',
    HERALD_MAX_SCHEDULE_AHEAD_S: '86400',
    HERALD_LOG_LEVEL: 'info',
    ...env,
  });
}

/** A logger with the app's options that keeps its lines in memory, to check what gets logged. */
export function captureLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const logger = pino(loggerOptions('info') as pino.LoggerOptions, stream);
  return { logger, lines };
}

/** A second view of the app's queue, to see what the API enqueued. */
export function inspectQueue(connection: Redis, prefix: string): Queue {
  const q = new Queue(FANOUT_QUEUE, { connection, ...queueOptions(new Keys(prefix)) });
  q.on('error', () => {});
  return q;
}

/** Resolves once the connection is ready (now or after a reconnect), within `ms`. */
export async function ready(redis: Redis, ms = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await once(redis, 'ready', { signal: AbortSignal.timeout(ms) });
}

export const auth = (key = KEY) => ({ authorization: `Bearer ${key}` });
