import { once } from 'node:events';
import { ConfigError } from '@herald/config';
import type { RedisClient } from '@herald/store';
import { createRedis } from '@herald/store';
import { buildApp } from './app.js';
import { type ApiConfig, loadApiConfig } from './config.js';
import { withTimeout } from './timeout.js';

/** How long start-up waits for Redis before listening anyway. */
const STARTUP_WAIT_MS = 5000;
/** Longest a graceful stop may take before we give up and exit 1. */
const STOP_DEADLINE_MS = 10_000;

/** QUIT when Redis answers; while it is down (no offline queue) just drop the socket. */
async function closeRedis(redis: RedisClient): Promise<void> {
  try {
    await withTimeout(redis.quit(), 1000, () => new Error('QUIT timed out'));
  } catch {
    redis.disconnect();
  }
}

/** Resolves when the connection is ready or after `ms`, whichever is first. */
async function connected(redis: RedisClient, ms: number): Promise<void> {
  if (redis.status === 'ready') return;
  await once(redis, 'ready', { signal: AbortSignal.timeout(ms) }).catch(() => {});
}

function readConfig(): ApiConfig {
  try {
    return loadApiConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  // Commands time out with the request deadline, so a stalled Redis cannot pile them up.
  const tuning = { commandTimeout: config.redisTimeoutMs };
  const redis = createRedis(config.redisUrl, 'request', 'herald-api', tuning);
  const queueRedis = createRedis(config.redisUrl, 'request', 'herald-api-queue', tuning);
  const app = buildApp({ config, redis, queueRedis });
  // Apps follow SIGHUP and edits of HERALD_APPS_FILE; a bad file keeps the current apps (logged).
  config.apps.watch(app.log);

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      app.log.error(`still stopping after ${STOP_DEADLINE_MS} ms; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    try {
      // Not ready from now on (/readyz 503), so balancers stop sending before we stop accepting.
      app.beginShutdown();
      config.apps.close();
      // Stops accepting, lets in-flight requests finish, then closes the queue (onClose).
      await app.close();
      await Promise.all([closeRedis(redis), closeRedis(queueRedis)]);
      app.log.info('stopped');
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, 'error while stopping');
      process.exit(1);
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  // Give Redis a moment so the first requests do not meet a connection still being made, but
  // start even when it is down: /readyz says so, and connections heal when it is back.
  await Promise.all([redis, queueRedis].map((r) => connected(r, STARTUP_WAIT_MS)));
  if (stopping) return; // a signal came while we waited: stop() owns the exit
  await app.listen({ host: config.host, port: config.port });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
