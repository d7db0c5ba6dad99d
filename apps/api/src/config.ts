import { AppRegistry, apiSchema, ConfigError, list, loadConfig, type Static } from '@herald/config';
import { parseAllowedHosts } from '@herald/protocol';
import type { WebPushApiConfig } from './push-policy.js';
import { parseTrustProxy } from './trust-proxy.js';

export type ApiEnv = Static<typeof apiSchema>;

/** The API's settings: the validated environment plus values derived from it once at start. */
export interface ApiConfig {
  redisUrl: string;
  host: string;
  port: number;
  logLevel: string;
  redisPrefix: string;
  apiKeys: string[];
  /**
   * The apps (HERALD_APPS_FILE, or the single app `default` from HERALD_API_KEYS and friends),
   * loaded and checked at start; main.ts makes it follow SIGHUP and file changes.
   */
  apps: AppRegistry;
  /** HERALD_API_KEY_CACHE_MS: how long a runtime key lookup is reused (and a revoke may lag). */
  keyCacheMs: number;
  /** HERALD_METRICS_APP_LABEL: per-app metrics carry the app id (bounded) or `all`. */
  metricsAppLabel: boolean;
  maxBodyBytes: number;
  maxDataBytes: number;
  ttlDefaultS: number;
  ttlMaxS: number;
  maxScheduleAheadS: number;
  idempotencyWindowS: number;
  statusKeepS: number;
  deviceRetentionS: number;
  /** HERALD_TRUST_PROXY as Fastify's `trustProxy`: whose X-Forwarded-For gives `req.ip`. */
  trustProxy: boolean | string;
  /** HERALD_TOKEN_SECRET: lets the web console mint demo device tokens ('' = no demo device). */
  tokenSecret: string;
  /** HERALD_PUBLIC_WS_URL: the WebSocket URL the console shows ('' = it suggests one). */
  publicWsUrl: string;
  /** HERALD_DIRECT_PUBLISH: immediate device/topic/broadcast publishes are appended here, not queued. */
  directPublish: boolean;
  /** HERALD_MAX_BATCH: most notifications in one batch publish. */
  maxBatch: number;
  directMaxDevices: number;
  /** HERALD_REDIS_TIMEOUT_MS: a request waiting longer than this for Redis is answered 503. */
  redisTimeoutMs: number;
  /** HERALD_REDIS_MIN_REPLICAS / HERALD_REDIS_REPLICA_TIMEOUT_MS: replicas confirming a publish before its 202. */
  replicas: { minReplicas: number; timeoutMs: number };
  /** Stream bounds for direct appends (the same settings as the worker's). */
  streams: { inboxMaxLen: number; topicMaxLen: number; keepMs: number };
  /** Web Push (docs/webpush.md); absent = off. */
  webpush?: WebPushApiConfig;
  /** HERALD_WEBHOOK_MAX_ATTEMPTS / HERALD_WEBHOOK_RETRY_MS: retries of a replayed dead letter. */
  webhookRetries: { attempts: number; retryMs: number };
}

/** Shortest API key accepted: shorter ones are guessable. */
export const MIN_API_KEY_LENGTH = 16;
/** Shortest HS256 secret accepted, as on the nodes. */
export const MIN_TOKEN_SECRET_LENGTH = 16;

/** Reads and checks the API's environment; throws ConfigError naming every bad setting. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const noKeys = !env.HERALD_API_KEYS && !env.HERALD_APPS_FILE;
  const KEYS_REQUIRED = 'HERALD_API_KEYS is required (or HERALD_APPS_FILE)';
  let e: ApiEnv;
  try {
    e = loadConfig(apiSchema, env);
  } catch (err) {
    if (err instanceof ConfigError && noKeys) throw new ConfigError([...err.problems, KEYS_REQUIRED]);
    throw err;
  }
  const apiKeys = [...new Set(list(e.HERALD_API_KEYS))];
  const problems: string[] = [];
  // The schema can only bound the whole list; each key must be long enough on its own.
  if (!e.HERALD_APPS_FILE) {
    if (noKeys) problems.push(KEYS_REQUIRED);
    else if (apiKeys.length === 0) problems.push('HERALD_API_KEYS must list at least one key');
  }
  if (apiKeys.some((k) => k.length < MIN_API_KEY_LENGTH))
    problems.push(`HERALD_API_KEYS: each key must be at least ${MIN_API_KEY_LENGTH} characters`);
  if (e.HERALD_TTL_DEFAULT_S > e.HERALD_TTL_MAX_S)
    problems.push(
      `HERALD_TTL_DEFAULT_S (${e.HERALD_TTL_DEFAULT_S}) must not exceed HERALD_TTL_MAX_S (${e.HERALD_TTL_MAX_S})`,
    );
  if (e.HERALD_TOKEN_SECRET && e.HERALD_TOKEN_SECRET.length < MIN_TOKEN_SECRET_LENGTH)
    problems.push(`HERALD_TOKEN_SECRET must be at least ${MIN_TOKEN_SECRET_LENGTH} characters`);
  // The replica wait is one step of a request bounded by HERALD_REDIS_TIMEOUT_MS (also the
  // connections' command timeout): a longer wait would end as a timeout, not as its own 503.
  if (e.HERALD_REDIS_MIN_REPLICAS > 0 && e.HERALD_REDIS_REPLICA_TIMEOUT_MS >= e.HERALD_REDIS_TIMEOUT_MS)
    problems.push(
      `HERALD_REDIS_REPLICA_TIMEOUT_MS (${e.HERALD_REDIS_REPLICA_TIMEOUT_MS}) must be less than HERALD_REDIS_TIMEOUT_MS (${e.HERALD_REDIS_TIMEOUT_MS})`,
    );
  const trustProxy = parseTrustProxy(e.HERALD_TRUST_PROXY);
  if (typeof trustProxy === 'object') problems.push(trustProxy.problem);
  let apps: AppRegistry | undefined;
  try {
    apps = new AppRegistry(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0 || typeof trustProxy === 'object' || !apps) throw new ConfigError(problems);
  return {
    redisUrl: e.REDIS_URL,
    host: e.HERALD_HOST,
    port: e.HERALD_PORT,
    logLevel: e.HERALD_LOG_LEVEL,
    redisPrefix: e.HERALD_REDIS_PREFIX,
    apiKeys,
    apps,
    keyCacheMs: e.HERALD_API_KEY_CACHE_MS,
    metricsAppLabel: e.HERALD_METRICS_APP_LABEL,
    maxBodyBytes: e.HERALD_MAX_BODY_BYTES,
    maxDataBytes: e.HERALD_MAX_DATA_BYTES,
    ttlDefaultS: e.HERALD_TTL_DEFAULT_S,
    ttlMaxS: e.HERALD_TTL_MAX_S,
    maxScheduleAheadS: e.HERALD_MAX_SCHEDULE_AHEAD_S,
    idempotencyWindowS: e.HERALD_IDEMPOTENCY_WINDOW_S,
    statusKeepS: e.HERALD_STATUS_KEEP_S,
    deviceRetentionS: e.HERALD_DEVICE_RETENTION_S,
    trustProxy,
    tokenSecret: e.HERALD_TOKEN_SECRET,
    publicWsUrl: e.HERALD_PUBLIC_WS_URL,
    directPublish: e.HERALD_DIRECT_PUBLISH,
    maxBatch: e.HERALD_MAX_BATCH,
    directMaxDevices: e.HERALD_DIRECT_MAX_DEVICES,
    redisTimeoutMs: e.HERALD_REDIS_TIMEOUT_MS,
    replicas: { minReplicas: e.HERALD_REDIS_MIN_REPLICAS, timeoutMs: e.HERALD_REDIS_REPLICA_TIMEOUT_MS },
    streams: {
      inboxMaxLen: e.HERALD_INBOX_MAXLEN,
      topicMaxLen: e.HERALD_TOPIC_MAXLEN,
      keepMs: e.HERALD_STREAM_KEEP_S * 1000,
    },
    webpush: {
      publicKey: e.HERALD_VAPID_PUBLIC_KEY,
      allowedHosts: parseAllowedHosts(e.HERALD_WEBPUSH_ALLOWED_HOSTS),
      allowLocalHttp: e.HERALD_WEBPUSH_ALLOW_LOCAL_HTTP,
      maxPerDevice: e.HERALD_WEBPUSH_MAX_PER_DEVICE,
      defaultAfterS: e.HERALD_WEBPUSH_DEFAULT_AFTER_S,
    },
    webhookRetries: { attempts: e.HERALD_WEBHOOK_MAX_ATTEMPTS, retryMs: e.HERALD_WEBHOOK_RETRY_MS },
  };
}
