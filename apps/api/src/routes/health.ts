import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RedisClient } from '@herald/store';
import { NotReady } from '../errors.js';
import { errorResponses, Health } from '../schemas.js';
import { withTimeout } from '../timeout.js';

/** Set when shutdown begins (SIGTERM): from then on the instance reports not ready. */
export interface Readiness {
  stopping: boolean;
}

export interface HealthRoutesOptions {
  redis: RedisClient;
  readiness?: Readiness;
  /** PING must answer within this for /readyz to say ready. */
  readyTimeoutMs?: number;
}

/** Liveness and readiness for orchestrators and balancers; no auth, nothing secret. */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, o) => {
  const tags = ['operations'];

  // Liveness: the process answers. Never depends on Redis, so an outage does not restart us.
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness',
        description: 'Answers while the process runs; never depends on Redis.',
        tags,
        response: { 200: { ...Health, description: 'The process runs.' } },
      },
    },
    async () => ({ status: 'ok' }),
  );

  // Readiness: without Redis every publish would fail, so take this instance out of rotation;
  // the same from SIGTERM on, so balancers stop sending requests before the API stops.
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness',
        description:
          'Ready when Redis answers PING within 1 s and the API is not shutting down (from SIGTERM on it answers 503).',
        tags,
        response: { 200: { ...Health, description: 'Ready for traffic.' }, ...errorResponses(503) },
      },
    },
    async () => {
      if (o.readiness?.stopping) throw new NotReady('shutting down');
      try {
        await withTimeout(o.redis.ping(), o.readyTimeoutMs ?? 1000, () =>
          Object.assign(new Error('PING timed out'), { code: 'ETIMEDOUT' }),
        );
      } catch (err) {
        throw new NotReady(`Redis does not answer: ${(err as Error).message}`, { cause: err });
      }
      return { status: 'ok' };
    },
  );
};
