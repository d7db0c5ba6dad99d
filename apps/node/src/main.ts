import { hostname } from 'node:os';
import { AppRegistry, ConfigError, loadConfig, nodeSchema } from '@herald/config';
import { createRedis } from '@herald/store';
import pino from 'pino';
import { HeraldNode } from './node.js';

let cfg: ReturnType<typeof loadConfig<typeof nodeSchema>>;
try {
  cfg = loadConfig(nodeSchema);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`herald node: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

// Checks the schema cannot express: how tokens are verified (the apps file checks its own apps).
const problems: string[] = [];
if (!cfg.HERALD_APPS_FILE) {
  if (cfg.HERALD_TOKEN_SECRET && cfg.HERALD_TOKEN_SECRET.length < 16)
    problems.push('HERALD_TOKEN_SECRET must be at least 16 characters');
  if (!cfg.HERALD_TOKEN_SECRET && !cfg.HERALD_JWKS_URL && !cfg.HERALD_JWKS_FILE)
    problems.push('HERALD_TOKEN_SECRET is required (or HERALD_JWKS_URL / HERALD_JWKS_FILE)');
}
if (problems.length) {
  process.stderr.write(`herald node: ${new ConfigError(problems).message}\n`);
  process.exit(1);
}

const nodeId = cfg.HERALD_NODE_ID || `${hostname()}-${process.pid}`;
const log = pino({ level: cfg.HERALD_LOG_LEVEL, base: { app: 'node', node: nodeId } });
// The apps (HERALD_APPS_FILE, else the single app `default` from the variables above), reloaded
// on SIGHUP and when the file changes: a bad file on reload keeps the current apps.
let apps: AppRegistry;
try {
  apps = new AppRegistry(process.env, { log });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`herald node: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
const redis = createRedis(cfg.REDIS_URL, 'background', `node:${nodeId}`);
const sub = createRedis(cfg.REDIS_URL, 'subscriber', `node:${nodeId}`);
for (const r of [redis, sub]) r.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));

const node = new HeraldNode(
  {
    nodeId,
    host: cfg.HERALD_HOST,
    port: cfg.HERALD_PORT,
    redisPrefix: cfg.HERALD_REDIS_PREFIX,
    apps: apps.all(),
    metricsAppLabel: cfg.HERALD_METRICS_APP_LABEL,
    cookieSecure: cfg.HERALD_COOKIE_SECURE,
    acceptRate: cfg.HERALD_ACCEPT_RATE,
    proxyProtocol: cfg.HERALD_PROXY_PROTOCOL,
    healthPort: cfg.HERALD_HEALTH_PORT,
    maxFrameBytes: cfg.HERALD_MAX_FRAME_BYTES,
    presenceTtlMs: cfg.HERALD_PRESENCE_TTL_MS,
    flushMs: cfg.HERALD_FLUSH_MS,
    drainMs: cfg.HERALD_DRAIN_MS,
    listenBacklog: cfg.HERALD_LISTEN_BACKLOG,
    pollMaxWaitMs: cfg.HERALD_POLL_MAX_WAIT_S * 1000,
    deviceRetentionMs: cfg.HERALD_DEVICE_RETENTION_S * 1000,
    replicas: { minReplicas: cfg.HERALD_REDIS_MIN_REPLICAS, timeoutMs: cfg.HERALD_REDIS_REPLICA_TIMEOUT_MS },
    limits: {
      heartbeatMs: cfg.HERALD_HEARTBEAT_MS,
      helloTimeoutMs: cfg.HERALD_HELLO_TIMEOUT_MS,
      maxTopics: cfg.HERALD_MAX_TOPICS,
      slowConsumerBytes: cfg.HERALD_SLOW_CONSUMER_BYTES,
      replayBatch: cfg.HERALD_REPLAY_BATCH,
      maxConnections: cfg.HERALD_MAX_CONNECTIONS,
      maxConnectionsPerUser: cfg.HERALD_MAX_CONNECTIONS_PER_USER,
      frameRate: cfg.HERALD_FRAME_RATE,
    },
  },
  { redis, sub, log },
);

const port = await node.start();
log.info({ port, apps: apps.all().length }, 'push node listening');
apps.onChange((next) => {
  node
    .reloadApps(next)
    .catch((err: Error) => log.error({ err: err.message }, 'apps reload failed on the node'));
});
apps.watch();

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  apps.close();
  if (signal === 'SIGTERM') await node.drain();
  await node.stop();
  await Promise.allSettled([redis.quit(), sub.quit()]);
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
