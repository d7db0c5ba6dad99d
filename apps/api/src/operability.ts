import type { RedisClient } from '@herald/store';
import type { FastifyInstance } from 'fastify';
import { ApiMetrics, installMetrics, metricsRoutes } from './metrics.js';
import { registerOpenApi } from './openapi.js';
import { installRequestLogging } from './request-log.js';
import type { Readiness } from './routes/health.js';
import { HeraldError } from './schemas.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Marks the API as shutting down: /readyz answers 503 from now on (main calls it on SIGTERM). */
    beginShutdown(): void;
  }
}

export interface Operability {
  metrics: ApiMetrics;
  readiness: Readiness;
}

/**
 * What operators need around the routes: request ids and client addresses in every request
 * log line, Prometheus metrics (`GET /metrics`), the OpenAPI document and UI (`/docs`), and the
 * shutdown flag behind /readyz. Call it before registering routes (OpenAPI must see them).
 */
export function installOperability(
  app: FastifyInstance,
  connections: readonly RedisClient[],
  opts: { appLabel?: boolean } = {},
): Operability {
  const metrics = new ApiMetrics({ appLabel: opts.appLabel ?? true });
  const readiness: Readiness = { stopping: false };
  app.addSchema(HeraldError);
  registerOpenApi(app);
  installRequestLogging(app);
  installMetrics(app, metrics);
  app.register(metricsRoutes, { metrics });
  const unwatch = connections.map((c) => metrics.watch(c));
  app.decorate('beginShutdown', () => {
    readiness.stopping = true;
  });
  app.addHook('onClose', async () => {
    for (const off of unwatch) off();
  });
  return { metrics, readiness };
}
