import type { Keys } from '@herald/store';
import type { FastifyRequest } from 'fastify';

/**
 * The Redis keys of the request's app. Issue #18 (multi-tenancy) sets `request.tenant` in its
 * auth hook; until then every request is the default app's. The one place routes get Keys from,
 * so the merge is a change here only.
 */
export function keysFor(req: FastifyRequest, defaults: Keys): Keys {
  return (req as { tenant?: { keys?: Keys } }).tenant?.keys ?? defaults;
}
