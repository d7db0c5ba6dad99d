import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import { NotReady } from '../errors.js';
import { Health } from '../schemas.js';
import { withTimeout } from '../timeout.js';

export interface HealthRoutesOptions {
  redis: Redis;
  /** PING must answer within this for /readyz to say ready. */
  readyTimeoutMs?: number;
}

/** Liveness and readiness for orchestrators and balancers; no auth, nothing secret. */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, o) => {
  const schema = { response: { 200: Health } };

  // Liveness: the process answers. Never depends on Redis, so an outage does not restart us.
  app.get('/healthz', { schema }, async () => ({ status: 'ok' }));

  // Readiness: without Redis every publish would fail, so take this instance out of rotation.
  app.get('/readyz', { schema }, async () => {
    try {
      await withTimeout(o.redis.ping(), o.readyTimeoutMs ?? 1000, () => new Error('PING timed out'));
    } catch (err) {
      throw new NotReady(`Redis does not answer: ${(err as Error).message}`);
    }
    return { status: 'ok' };
  });
};
