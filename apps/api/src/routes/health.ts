import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { healthOk, notReady } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import { Health } from '../schemas.js';
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
  /** Called when the readiness PING fails or times out (metrics). */
  onRedisError?: (err: unknown) => void;
}

/**
 * Liveness and readiness for orchestrators and balancers; no auth, nothing secret. The bodies
 * are the ones every Herald process answers (`healthOk` / `notReady` from @herald/protocol).
 */
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
    async () => healthOk('api'),
  );

  // Readiness: without Redis every publish would fail, so take this instance out of rotation;
  // the same from SIGTERM on, so balancers stop sending requests before the API stops. The 503
  // is answered here, not thrown: probes hit it every few seconds, and an outage is logged once
  // by the connection watcher, not once per probe.
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness',
        description:
          'Ready when Redis answers PING within 1 s and the API is not shutting down (from SIGTERM on it answers 503).',
        tags,
        response: {
          200: { ...Health, description: 'Ready for traffic.' },
          503: { ...Health, description: 'Not ready: `code` is HERALD_NOT_READY, `message` says why.' },
        },
      },
    },
    async (req, reply) => {
      const unavailable = (message: string) => {
        req.errorCode = 'HERALD_NOT_READY';
        return reply.code(503).header('Retry-After', '1').send(notReady('api', message));
      };
      if (o.readiness?.stopping) return unavailable('shutting down');
      try {
        await withTimeout(o.redis.ping(), o.readyTimeoutMs ?? 1000, () =>
          Object.assign(new Error('PING timed out'), { code: 'ETIMEDOUT' }),
        );
      } catch (err) {
        o.onRedisError?.(err);
        return unavailable(`Redis does not answer: ${(err as Error).message}`);
      }
      return healthOk('api');
    },
  );
};
