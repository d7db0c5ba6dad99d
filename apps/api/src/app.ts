import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FanoutJob } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import {
  ApiKeyStore,
  createDelivery,
  Devices,
  FANOUT_QUEUE,
  Idempotency,
  Keys,
  queueOptions,
  ReplicaGate,
  StatusStore,
  Streams,
  WEBHOOK_QUEUE,
  WebhookExpiries,
  type WebhookJob,
} from '@herald/store';
import { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { authenticator } from './auth.js';
import type { ApiConfig } from './config.js';
import { consoleRoutes } from './console/routes.js';
import { deviceOrApiKey } from './device-auth.js';
import { DirectPublisher } from './direct.js';
import { installErrorHandlers } from './error-handler.js';
import { BadRequest } from './errors.js';
import { frameworkErrorOptions, jsonTooDeep, MAX_JSON_DEPTH } from './framework-errors.js';
import { type FanoutQueue, NotificationService } from './notifications.js';
import { installOperability } from './operability.js';
import { installRateLimits } from './rate-limit.js';
import { requestOptions } from './request-log.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { notificationRoutes } from './routes/notifications.js';
import { presenceRoutes } from './routes/presence.js';
import { topicRoutes } from './routes/topics.js';
import { webhookRoutes } from './routes/webhooks.js';
import { webpushRoutes } from './routes/webpush.js';
import { errorResponses } from './schemas.js';
import { installRedisDeadline } from './timeout.js';
import { formatValidation } from './validation.js';

export interface AppDeps {
  config: ApiConfig;
  /**
   * Connection for store calls, made with `createRedis(url, 'request')`: no offline queue, so
   * while Redis is down requests fail at once (503) instead of piling up. The caller owns it.
   */
  redis: RedisClient;
  /** Connection for the BullMQ queue, also a 'request' one. The caller owns it. */
  queueRedis: RedisClient;
  /** A logger to use instead of one built from config (tests pass their own). */
  loggerInstance?: FastifyBaseLogger;
  /** Bound on each BullMQ call (default HERALD_REDIS_TIMEOUT_MS). */
  queueTimeoutMs?: number;
}

/** Logger options: keys travel in Authorization, which must never reach a log line. */
export function loggerOptions(level: string): Exclude<FastifyServerOptions['logger'], boolean | undefined> {
  return {
    level,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'request.headers.authorization'],
      censor: '[redacted]',
    },
  };
}

/** Logs a connection's outage once when it starts and once when it ends, not every retry. */
function watchConnection(redis: RedisClient, name: string, log: FastifyBaseLogger): () => void {
  let down = false;
  const onError = (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ err }, `Redis ${name} connection lost; reconnecting`);
  };
  const onReady = () => {
    if (!down) return;
    down = false;
    log.info(`Redis ${name} connection back`);
  };
  redis.on('error', onError);
  redis.on('ready', onReady);
  return () => {
    redis.off('error', onError);
    redis.off('ready', onReady);
  };
}

/** The API as a Fastify instance, wired to the given connections; `listen` is the caller's. */
export function buildApp(deps: AppDeps) {
  const { config, redis } = deps;
  const app = Fastify({
    ...(deps.loggerInstance
      ? { loggerInstance: deps.loggerInstance }
      : { logger: loggerOptions(config.logLevel) }),
    bodyLimit: config.maxBodyBytes,
    ...requestOptions(config),
    ...frameworkErrorOptions(),
    // Fastify's Ajv defaults coerce types and silently drop unknown properties; a publish API
    // should reject both, so the publisher learns about a typo instead of losing a field.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    schemaErrorFormatter: formatValidation,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Only JSON bodies: anything else is a 415, not a string that fails validation.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  // Fastify's own parser (prototype poisoning is an error), except that an empty body is no
  // body: clients that always send Content-Type: application/json can still PUT and DELETE.
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body.length === 0) done(null, undefined);
    else if (jsonTooDeep(body as string))
      done(new BadRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    else json(req, body as string, done);
  });
  app.decorateRequest('apiKeyId', '');
  app.decorateRequest('tenant', null as unknown as FastifyRequest['tenant']);
  installErrorHandlers(app, config.maxBodyBytes);
  // Every /v1 route waits only for Redis: bound the wait, stalled Redis included (docs/api.md).
  installRedisDeadline(app, config.redisTimeoutMs, ['/v1/'], ['/v1/notifications/batch']);
  const ops = installOperability(app, [redis, deps.queueRedis], { appLabel: config.metricsAppLabel });

  const keys = new Keys(config.redisPrefix);
  const queue: FanoutQueue = new Queue<FanoutJob>(FANOUT_QUEUE, {
    connection: deps.queueRedis,
    ...queueOptions(keys),
    // The version check is one more command at start-up; if it failed (Redis down at that
    // moment) the queue would stay broken. The worker checks the version.
    skipVersionCheck: true,
  });
  // BullMQ re-emits connection errors; watchConnection already logs them once per outage.
  queue.on('error', (err) => app.log.debug({ err }, 'queue connection error'));
  // Dead-letter replays (docs/webhooks.md) go back to the worker's webhook queue.
  const webhookQueue = new Queue<WebhookJob>(WEBHOOK_QUEUE, {
    connection: deps.queueRedis,
    ...queueOptions(keys),
    skipVersionCheck: true,
  });
  webhookQueue.on('error', (err) => app.log.debug({ err }, 'queue connection error'));
  const unwatch = [
    watchConnection(redis, 'request', app.log),
    watchConnection(deps.queueRedis, 'queue', app.log),
  ];

  const status = new StatusStore(redis, keys, config.statusKeepS * 1000);
  const streams = new Streams(redis, keys, config.streams);
  const devices = new Devices(redis, keys, config.deviceRetentionS * 1000);
  // HERALD_REDIS_MIN_REPLICAS: direct deliveries and topic changes wait inside the delivery; the
  // queue path waits in NotificationService.accept (status and job are written there).
  const replicas = new ReplicaGate(config.replicas, `${keys.prefix}:replica-barrier`);
  const delivery = createDelivery({ redis, keys, streams, status, devices, replicas });
  const direct = config.directPublish
    ? new DirectPublisher({ delivery, maxDevices: config.directMaxDevices })
    : undefined;
  const notifications = new NotificationService({
    config,
    status,
    expiries: new WebhookExpiries(redis, keys),
    direct,
    idempotency: new Idempotency(redis, keys, config.idempotencyWindowS * 1000),
    queue,
    replicas: { gate: replicas, connections: [redis, deps.queueRedis] },
    log: app.log,
    queueTimeoutMs: deps.queueTimeoutMs ?? config.redisTimeoutMs,
    onAccepted: (target, scheduled, path) => ops.metrics.accepted(target, scheduled, path),
  });
  // Runtime API keys (admin API, `herald keys`); the apps' own keys are in config.apps.
  const apiKeys = new ApiKeyStore(redis, keys, { cacheMs: config.keyCacheMs });
  const authenticate = authenticator({ apps: config.apps, store: apiKeys, keys });

  app.register(healthRoutes, {
    redis,
    readiness: ops.readiness,
    onRedisError: () => ops.metrics.redisErrors.inc(),
  });
  app.register(consoleRoutes, { config, authenticate });
  // Web Push registration: its own auth per route (API key or the device's token, each of its
  // app), the key route none (docs/webpush.md).
  app.register(webpushRoutes, {
    prefix: '/v1',
    redis,
    apps: config.apps,
    config: config.webpush,
    deviceRetentionS: config.deviceRetentionS,
    authenticate: deviceOrApiKey({ apiKey: authenticate, apps: config.apps, keys }),
  });
  app.register(
    async (v1) => {
      v1.addHook('onRequest', authenticate);
      await installRateLimits(v1, { redis, keys });
      // Every /v1 route may answer 403 (scope), a publish 429 (limits): say so in OpenAPI.
      v1.addHook('onRoute', (route) => {
        const response = route.schema?.response as Record<number, unknown> | undefined;
        if (!response) return;
        const publish = route.method === 'POST' && route.url.includes('/notifications');
        Object.assign(response, {
          ...(publish ? errorResponses(403, 429) : errorResponses(403)),
          ...response,
        });
      });
      await v1.register(notificationRoutes, { config, notifications });
      await v1.register(topicRoutes, { delivery });
      await v1.register(adminRoutes, {
        prefix: '/admin',
        redis,
        keys,
        streamLimits: config.streams,
        deviceRetentionMs: config.deviceRetentionS * 1000,
      });
      await v1.register(keyRoutes, { prefix: '/admin', store: apiKeys });
      await v1.register(presenceRoutes, { redis, deviceRetentionMs: config.deviceRetentionS * 1000 });
      await v1.register(webhookRoutes, {
        prefix: '/admin',
        redis,
        queue: webhookQueue,
        retries: config.webhookRetries,
      });
    },
    { prefix: '/v1' },
  );

  app.addHook('onClose', async () => {
    await queue.close();
    await webhookQueue.close();
    await replicas.close();
    for (const off of unwatch) off();
  });
  return app;
}

export type HeraldApi = ReturnType<typeof buildApp>;
