import { healthOk, notReady } from '@herald/protocol';
import type { RedisClient } from '@herald/store';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface HealthDeps {
  /** The connection fan-outs use for streams, status and doorbells. */
  redis: RedisClient;
  /** The BullMQ worker (only `isRunning` is used). */
  worker: { isRunning(): boolean };
  /** A PING slower than this counts as Redis down (default 1000 ms). */
  pingTimeoutMs?: number;
  /** Served at GET /metrics when given. */
  metrics?: Registry;
  /** Called when the readiness PING fails or times out (metrics). */
  onRedisError?: (err: unknown) => void;
}

/**
 * Why the worker cannot take jobs right now, or undefined when it can. The PING is bounded:
 * the background connection queues commands while it reconnects, so an unbounded PING would
 * hang the probe instead of failing it.
 */
export async function notReadyReason(deps: HealthDeps): Promise<string | undefined> {
  if (!deps.worker.isRunning()) return 'fan-out worker is not running';
  if (deps.redis.status !== 'ready') return `redis connection is ${deps.redis.status}`;
  const timeoutMs = deps.pingTimeoutMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer to PING within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([deps.redis.ping(), timeout]);
    return undefined;
  } catch (err) {
    deps.onRedisError?.(err);
    return `redis: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Health endpoints: `/healthz` is liveness (the process answers), `/readyz` is readiness
 * (Redis answers and the worker is pulling jobs), so an orchestrator restarts a wedged process
 * but only stops routing traffic (none here) or alerts while Redis is away. `/metrics` is the
 * Prometheus scrape (no auth: keep the port private).
 */
export function createHealthServer(deps: HealthDeps): FastifyInstance {
  // Probes hit these every few seconds: no request logs.
  const app = Fastify({ logger: false });
  // The bodies every Herald process answers (@herald/protocol).
  app.get('/healthz', async () => healthOk('worker'));
  app.get('/readyz', async (_req, reply) => {
    const message = await notReadyReason(deps);
    if (message === undefined) return healthOk('worker');
    return reply.code(503).send(notReady('worker', message));
  });
  const registry = deps.metrics;
  if (registry)
    app.get('/metrics', async (_req, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    });
  return app;
}
