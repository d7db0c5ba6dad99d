import { defaultMetricsOptions, tenantLabel } from '@herald/config';
import type { TargetKind } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import { isRedisOutage } from './errors.js';

const TARGETS: readonly TargetKind[] = ['devices', 'users', 'topic', 'broadcast'];

/** Route label of requests that matched no route, so scanners cannot blow up cardinality. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The API's Prometheus metrics, in a Registry of its own (never prom-client's global one, so
 * two apps in one process, as in tests, do not collide). Default Node.js metrics keep their
 * standard names (`process_*`, `nodejs_*`, e.g. `nodejs_eventloop_lag_seconds`); every series
 * carries `app="api"`, so one dashboard serves the API, the worker and the nodes.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly published: Counter<'target' | 'scheduled' | 'path'>;
  readonly publishRejected: Counter<'code'>;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  readonly redisErrors: Counter;
  readonly tenantPublishes: Counter<'tenant' | 'status'>;
  /** The `tenant` label of an app id (HERALD_METRICS_APP_LABEL; bounded, see @herald/config). */
  readonly tenant: (appId: string) => string;

  constructor(opts: { defaultMetrics?: boolean; appLabel?: boolean } = {}) {
    this.tenant = tenantLabel(opts.appLabel ?? true);
    const registers = [this.registry];
    this.registry.setDefaultLabels({ app: 'api' });
    if (opts.defaultMetrics !== false) collectDefaultMetrics(defaultMetricsOptions(this.registry));
    this.published = new Counter({
      name: 'herald_notifications_published_total',
      help: 'Notifications accepted (idempotent replays not counted), by target kind, whether deliverAt is in the future, and path (direct: appended by the API; queue: fanned out by the worker).',
      labelNames: ['target', 'scheduled', 'path'],
      registers,
    });
    // Zero series from the start: rate() and dashboards see every combination before its first publish.
    for (const target of TARGETS) {
      for (const scheduled of ['true', 'false']) this.published.inc({ target, scheduled, path: 'queue' }, 0);
      this.published.inc({ target, scheduled: 'false', path: 'direct' }, 0);
    }
    this.publishRejected = new Counter({
      name: 'herald_publish_rejected_total',
      help: 'POST /v1/notifications answered with an error, by error code (HERALD_BAD_REQUEST, HERALD_REDIS_UNAVAILABLE...).',
      labelNames: ['code'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'herald_http_requests_total',
      help: `HTTP requests by route pattern (${UNMATCHED_ROUTE} when none matched), method and status code.`,
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'herald_http_request_duration_seconds',
      help: 'Time from request to response, by route pattern and method.',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.tenantPublishes = new Counter({
      name: 'herald_tenant_publish_requests_total',
      help: 'Publish requests (POST /v1/notifications and /v1/notifications/batch) with a valid API key, by app (`tenant`: the app id, `other` past 100 apps, `all` with HERALD_METRICS_APP_LABEL=false) and status code (429: over a limit).',
      labelNames: ['tenant', 'status'],
      registers,
    });
    this.redisErrors = new Counter({
      name: 'herald_redis_errors_total',
      help: "Redis connection 'error' events plus failed Redis commands the API caught (each answered 503 or 500).",
      registers,
    });
  }

  accepted(target: TargetKind, scheduled: boolean, path: 'direct' | 'queue'): void {
    this.published.inc({ target, scheduled: String(scheduled), path });
  }

  /** Counts the connection's 'error' events (one per failed connect attempt while Redis is away). */
  watch(redis: RedisClient): () => void {
    const onError = () => this.redisErrors.inc();
    redis.on('error', onError);
    return () => redis.off('error', onError);
  }
}

/** A failed Redis command: outage (connection, timeout, OOM...) or an error reply. */
export function isRedisFailure(err: unknown): boolean {
  return isRedisOutage(err) || (err instanceof Error && err.name === 'ReplyError');
}

/**
 * Request metrics for every route (hooks on the root instance) and the count of Redis
 * failures behind error answers. `req.errorCode` is set by the error handler.
 */
export function installMetrics(app: FastifyInstance, metrics: ApiMetrics): void {
  app.addHook('onError', async (_req, _reply, err) => {
    if (isRedisFailure(err) || isRedisFailure((err as { cause?: unknown }).cause)) metrics.redisErrors.inc();
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? UNMATCHED_ROUTE;
    const status = reply.statusCode;
    metrics.httpRequests.inc({ route, method: req.method, status: String(status) });
    metrics.httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    if (status >= 400 && req.method === 'POST' && route === '/v1/notifications')
      metrics.publishRejected.inc({ code: req.errorCode || `HTTP_${status}` });
    if (
      req.tenant &&
      req.method === 'POST' &&
      (route === '/v1/notifications' || route === '/v1/notifications/batch')
    )
      metrics.tenantPublishes.inc({ tenant: metrics.tenant(req.tenant.app.id), status: String(status) });
  });
}

/**
 * GET /metrics in the Prometheus text format. No API key: Prometheus scrapes it. It is outside
 * /v1 so a balancer or ingress can keep it private (deny /metrics from outside).
 */
export const metricsRoutes: FastifyPluginAsync<{ metrics: ApiMetrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics',
        description:
          'Metrics in the Prometheus text format (version 0.0.4). No API key: keep it private at the balancer.',
        tags: ['operations'],
        produces: ['text/plain'],
        response: {
          200: {
            description: 'The metrics of this API process.',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
};
